import { describe, expect, it } from 'vitest';
import { sqlFragment } from '../../src/sql/fragment.js';
import { splitDotted } from '../../src/catalog/names.js';
import { parseTableWithKey, orphanFlagRule } from '../../src/rules/from-flags.js';
import { referencedStem } from '../../src/rules/discover.js';
import { predicateExcludesDeleted, topLevelConjuncts } from '../../src/catalog/soft-delete.js';
import { parseDuration } from '../../src/commands/options.js';
import { redact } from '../../src/db.js';
import { resolveTarget } from '../../src/connection/resolve.js';
import { parseConfig } from '../../src/config.js';

describe('sqlFragment accepts exactly one expression', () => {
  it.each([
    "status <> 'draft'",
    'lower(email)',
    "note = 'a;b -- not a comment'",
    'x = $$;$$',
    '"weird;name" is not null',
    "E'it\\'s' = label",
  ])('accepts %s', (text) => expect(sqlFragment(text, 'where').text).toBe(text));

  it.each([
    ['true; delete from t', /contains ";"/],
    ['a = 1 -- and the rest', /"--" comment/],
    ['a /* x */ = 1', /"\/\*" comment/],
    ['lower(email', /never closed/],
    ['a) or (b', /closes more than was opened/],
    ["name = 'open", /unterminated string/],
    ['', /empty/],
  ])('refuses %s', (text, why) => expect(() => sqlFragment(text, 'where')).toThrow(why));
});

describe('names and flags', () => {
  it('splits dotted names, with quotes for parts that contain dots', () => {
    expect(splitDotted('Clinic.Patient', 't')).toEqual(['Clinic', 'Patient']);
    expect(splitDotted('"my.schema"."a""b"', 't')).toEqual(['my.schema', 'a"b']);
    expect(() => splitDotted('a..b', 't')).toThrow(/empty name part/);
  });

  it('parses --duplicates into columns and expressions', () => {
    expect(parseTableWithKey('public.users(lower(email), "Tenant", org_id)', '--duplicates')).toEqual({
      table: 'public.users',
      parts: [{ expr: 'lower(email)' }, 'Tenant', 'org_id'],
    });
    expect(() => parseTableWithKey('users(email) and more', '--duplicates')).toThrow(/not of the form/);
  });

  it('parses --orphans in dotted and composite forms', () => {
    expect(orphanFlagRule('app.token.user_id -> app.users.id')).toEqual({
      check: 'orphaned-rows',
      table: 'app.token',
      columns: ['user_id'],
      references: { table: 'app.users', columns: ['id'] },
    });
    expect(orphanFlagRule('member(a, b) -> region(x, y)')).toMatchObject({
      columns: ['a', 'b'],
      references: { table: 'region', columns: ['x', 'y'] },
    });
    expect(() => orphanFlagRule('token.user_id')).toThrow(/must be/);
  });

  it('finds the stem of reference-looking columns', () => {
    expect(referencedStem('user_id')).toBe('user');
    expect(referencedStem('USER_ID')).toBe('USER');
    expect(referencedStem('categoryId')).toBe('category');
    expect(referencedStem('valid')).toBeNull();
    expect(referencedStem('paid')).toBeNull();
  });
});

describe('soft-delete predicates', () => {
  const ts = { column: 'deleted_at', kind: 'timestamp' } as const;
  const bool = { column: 'isDeleted', kind: 'boolean' } as const;
  it('recognises predicates that leave deleted rows out', () => {
    expect(predicateExcludesDeleted('(deleted_at IS NULL)', ts)).toBe(true);
    expect(predicateExcludesDeleted('((tenant_id > 0) AND (deleted_at IS NULL))', ts)).toBe(true);
    expect(predicateExcludesDeleted('(NOT "isDeleted")', bool)).toBe(true);
    expect(predicateExcludesDeleted('("isDeleted" = false)', bool)).toBe(true);
  });
  it('recognises a marker named like a keyword, which the server prints quoted', () => {
    expect(predicateExcludesDeleted('("end" IS NULL)', { column: 'end', kind: 'timestamp' } as const)).toBe(true);
    expect(predicateExcludesDeleted('(NOT "order")', { column: 'order', kind: 'boolean' } as const)).toBe(true);
  });
  it('does not mistake other predicates for it', () => {
    expect(predicateExcludesDeleted(null, ts)).toBe(false);
    expect(predicateExcludesDeleted('((deleted_at IS NULL) OR (tenant_id = 1))', ts)).toBe(false);
    expect(predicateExcludesDeleted('(deleted_at IS NOT NULL)', ts)).toBe(false);
    expect(topLevelConjuncts("((a = 'x AND y') AND (b))")).toEqual(["a = 'x AND y'", 'b']);
  });
});

describe('options and connection', () => {
  it('parses durations', () => {
    expect(parseDuration('2s', 'x')).toBe(2000);
    expect(parseDuration('5min', 'x')).toBe(300_000);
    expect(parseDuration('250', 'x')).toBe(250);
    expect(() => parseDuration('soon', '--lock-timeout')).toThrow(/--lock-timeout expects a duration/);
  });

  it('never shows a password', () => {
    expect(redact('failed for postgres://ops:hunter2@db:5432/app')).toBe('failed for postgres://ops:****@db:5432/app');
    expect(resolveTarget('postgres://ops:hunter2@db.internal:6543/app').display).toBe('db.internal:6543/app');
    expect(resolveTarget(undefined, { PGHOST: 'h', PGDATABASE: 'd' }).display).toBe('h:5432/d');
  });

  it('reads JSON configs too', () => {
    expect(
      parseConfig('{"rules":[{"check":"duplicate-rows","table":"t","key":["a"]}]}', 'rowdoctor.json').rules,
    ).toHaveLength(1);
  });
});
