import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { parseFailOn, parseFormat, parseOnly } from '../../src/commands/options.js';
import { nearest } from '../../src/suggest.js';

/** The one error line parseConfig reports for `text`. */
function configError(text: string): string {
  try {
    parseConfig(text, 'rowdoctor.yml');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a config error');
}

const rule = (check: string, rest: string) => `rules:\n  - check: ${check}\n    table: t\n${rest}`;

describe('config errors quote the value found and suggest the nearest valid one', () => {
  it('a check id', () => {
    expect(configError(rule('duplicate-rowz', '    key: [a]\n'))).toContain(
      'rules[0].check: got "duplicate-rowz" — did you mean "duplicate-rows"? (one of duplicate-rows, orphaned-rows, soft-delete-conflicts)',
    );
    expect(configError(rule('orphans', '    key: [a]\n'))).toContain(
      'rules[0].check: got "orphans"; expected one of duplicate-rows, orphaned-rows, soft-delete-conflicts',
    );
    expect(configError('rules:\n  - table: t\n')).toContain('rules[0].check: missing; expected one of duplicate-rows');
  });

  it.each([
    ['duplicate-rows', '    key: [a]\n    repair: merg\n', 'got "merg" — did you mean "merge"?'],
    ['duplicate-rows', '    key: [a]\n    repair: soft_delete\n', 'got "soft_delete" — did you mean "soft-delete"?'],
    [
      'orphaned-rows',
      '    column: a\n    references: p.id\n    repair: set-nul\n',
      'got "set-nul" — did you mean "set-null"?',
    ],
    [
      'soft-delete-conflicts',
      '    key: [a]\n    repair: purge-delted\n',
      'got "purge-delted" — did you mean "purge-deleted"?',
    ],
    ['soft-delete-conflicts', '    key: [a]\n    repair: Revive\n', 'got "Revive" — did you mean "revive"?'],
  ])('a %s repair action', (check, rest, message) => {
    expect(configError(rule(check, rest))).toContain(`rules[0].repair: ${message}`);
  });

  it('a repair action nothing like a valid one lists them all, and a non-string says what it is', () => {
    expect(configError(rule('orphaned-rows', '    column: a\n    references: p.id\n    repair: nuke\n'))).toContain(
      'rules[0].repair: got "nuke"; expected one of delete, soft-delete, set-null, report',
    );
    expect(configError(rule('duplicate-rows', '    key: [a]\n    repair: 3\n'))).toContain(
      'rules[0].repair: got 3 (a number); expected one of merge, delete, soft-delete, report',
    );
  });

  it('a key, at every level, with the keys allowed there', () => {
    expect(configError('rule: []\n')).toMatch(
      /:1:1 rule: unknown key "rule" — did you mean "rules"\? \(keys here: schemas, softDelete, deletedParent, rules, references\)/,
    );
    expect(configError(rule('duplicate-rows', '    key: [a]\n    repiar: merge\n'))).toContain(
      'rules[0].repiar: unknown key "repiar" — did you mean "repair"?',
    );
    // a rule's keys are its own check's: those of another check are not offered
    expect(configError(rule('soft-delete-conflicts', '    key: [a]\n    fill: true\n'))).toContain(
      'rules[0].fill: unknown key "fill"; keys here: check, table, key, where, nullsNotDistinct, repair',
    );
    expect(configError(rule('duplicate-rows', '    key: [a]\n    keep: { order_by: [id] }\n'))).toContain(
      'rules[0].keep.order_by: unknown key "order_by" — did you mean "orderBy"?',
    );
    expect(configError('softDelete: { colums: [gone] }\n')).toContain(
      'softDelete.colums: unknown key "colums" — did you mean "columns"?',
    );
    expect(configError(rule('orphaned-rows', '    column: a\n    references: { table: p, column: [id] }\n'))).toContain(
      'rules[0].references.column: unknown key "column" — did you mean "columns"?',
    );
    expect(configError(rule('duplicate-rows', '    key: [{ exp: "lower(a)" }]\n'))).toContain(
      'rules[0].key[0].exp: unknown key "exp" — did you mean "expr"?',
    );
  });

  it('flags: --only, --format, --fail-on', () => {
    expect(() => parseOnly('duplicate-rows,orphaned-row')).toThrow(
      '--only: got "orphaned-row" — did you mean "orphaned-rows"? (one of duplicate-rows, orphaned-rows, soft-delete-conflicts)',
    );
    expect(() => parseFormat('jsn', ['text', 'json'])).toThrow(
      '--format: got "jsn" — did you mean "json"? (one of text, json)',
    );
    expect(() => parseFormat('junit', ['text', 'json'])).toThrow('--format: got "junit"; expected one of text, json');
    expect(() => parseFailOn('warn')).toThrow(
      '--fail-on: got "warn" — did you mean "warning"? (one of error, warning)',
    );
  });

  it('suggests only what is near enough to be a typo', () => {
    expect(nearest('duplicate-rowz', ['duplicate-rows', 'orphaned-rows'])).toBe('duplicate-rows');
    expect(nearest('MERGE', ['merge', 'delete'])).toBe('merge');
    expect(nearest('nuke', ['delete', 'report'])).toBeNull();
    expect(nearest('x', [])).toBeNull();
  });
});
