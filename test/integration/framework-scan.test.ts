import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { danglingBySql, DJANGO, LARAVEL, MAPPINGS, RAILS } from '../support/frameworks.js';
import { runCli, scanFindings, writeConfig } from '../support/run.js';

/**
 * References the catalog does not hold, found with no config: Rails polymorphic columns (STI base
 * class, namespaced ActiveStorage classes), Laravel morphs (class names, morph-map aliases in the
 * singular and the plural), Django generic foreign keys (content types; a text object_id). Every
 * count is compared with SQL written here; the type → table mapping is what the frameworks do.
 */

let db: TestDb;
beforeAll(async () => {
  db = await freshDatabase(RAILS + DJANGO + LARAVEL);
});
afterAll(() => db.drop());

describe('zero-config scan of Rails, Django and Laravel schemas', () => {
  it('finds every polymorphic and generic reference, one finding per type, exact against SQL', async () => {
    const res = await runCli(['scan', '--database-url', db.url, '--format', 'json', '--config', '/dev/null']);
    expect(res.code, res.stderr).toBe(0); // inferred: warnings only
    const doc = JSON.parse(res.stdout);
    const typed = doc.findings.filter((f: { polymorphic?: unknown }) => f.polymorphic);
    const expected = [];
    for (const m of MAPPINGS)
      for (const type of Object.keys(m.types)) {
        const sqlCount = await danglingBySql(db, m, type);
        if (sqlCount.rows)
          expected.push({
            table: m.table,
            polymorphic: { typeColumn: m.typeColumn, idColumn: m.idColumn, type },
            references: `${m.types[type]}(id)`,
            columns: [m.idColumn],
            rows: sqlCount.rows,
            groups: sqlCount.groups,
            missingParent: sqlCount.rows,
            deletedParent: 0,
            inferred: true,
            severity: 'warning',
            source: 'discovered',
            keys: sqlCount.keys,
          });
      }
    const got = typed.map((f: Record<string, unknown> & { samples: { key: unknown[] }[] }) => ({
      table: f.table,
      polymorphic: f.polymorphic,
      references: f.references,
      columns: f.columns,
      rows: f.rows,
      groups: f.groups,
      missingParent: f.missingParent,
      deletedParent: f.deletedParent,
      inferred: f.inferred,
      severity: f.severity,
      source: f.source,
      keys: f.samples.map((s) => String(s.key[0])).sort(),
    }));
    const order = (a: { table: string; polymorphic: { type: string } }, b: typeof a) =>
      `${a.table}|${a.polymorphic.type}`.localeCompare(`${b.table}|${b.polymorphic.type}`);
    expect(got.sort(order)).toEqual(expected.sort(order));
    // The damage the fixtures hold, so the comparison above compared something.
    expect(expected.map((e) => `${e.table} ${e.polymorphic.type} ${e.rows}`).sort()).toEqual(
      [
        'django.django_admin_log 2 2', // '31' and the non-key 'x-1'
        'django.taggit_taggeditem 2 1',
        'laravel.comments App\\Models\\Post 1',
        'laravel.images user 1',
        'rails.active_storage_attachments ActiveStorage::VariantRecord 1',
        'rails.comments Post 1',
        'rails.comments User 3',
        'rails.taggings User 1',
      ].sort(),
    );

    // Each mapping is an assumption with its evidence; a type value that names no table is a warning
    // with its row count, never guessed.
    const mapped = doc.assumptions.filter((a: { kind: string }) => a.kind === 'polymorphic-reference');
    expect(mapped).toHaveLength(MAPPINGS.reduce((n, m) => n + Object.keys(m.types).length, 0));
    expect(mapped).toContainEqual({
      kind: 'polymorphic-reference',
      table: 'rails.comments',
      column: 'commentable_id',
      evidence: "commentable_type 'User' → rails.users(id): matched 7 of 9 distinct commentable_id values",
    });
    const unknown = doc.warnings.filter((w: { code: string }) => w.code === 'unknown-polymorphic-type');
    expect(
      unknown.map((w: { table: string; message: string }) => [
        w.table,
        w.message.match(/'(.*)' in (\d+) row/)?.slice(1),
      ]),
    ).toEqual(
      [
        ['rails.comments', ['Ghost', '2']],
        ['django.taggit_taggeditem', ['4', '1']],
        ['laravel.comments', ['App\\Models\\Podcast', '1']],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    // The type and id columns are never taken for plain X_id references.
    expect(
      doc.findings.filter((f: { inferred: boolean; polymorphic?: unknown }) => f.inferred && !f.polymorphic),
    ).toEqual([]);
  });

  it('a declared reference checks only the types it lists, as errors', async () => {
    const findings = await scanFindings(db.url, {
      discover: false,
      configText: `
references:
  - table: rails.comments
    polymorphic: { type: commentable_type, id: commentable_id }
    types: { User: rails.users }
  - table: django.django_admin_log
    generic: { contentType: content_type_id, id: object_id }
    types: { blog.entry: blog_entry }
`,
    });
    expect(findings.map((f) => [f.table, f.polymorphic?.type, f.rows, f.severity, f.source, f.inferred])).toEqual([
      ['rails.comments', 'User', 3, 'error', 'config', false],
      ['django.django_admin_log', '2', 2, 'error', 'config', false],
    ]);
  });

  it('verify-constraints lists them as unenforceable with their violations, proposing no foreign key', async () => {
    const config = writeConfig(`
references:
  - table: rails.comments
    polymorphic: { type: commentable_type, id: commentable_id }
    types: { User: rails.users, Post: rails.posts }
`);
    const res = await runCli(['verify-constraints', '--database-url', db.url, '--config', config, '--format', 'json']);
    expect(res.code, res.stderr).toBe(1);
    const doc = JSON.parse(res.stdout);
    expect(doc.constraints).toEqual([
      expect.objectContaining({
        kind: 'foreign-key',
        table: 'rails.comments',
        columns: ['commentable_id'],
        references: 'rails.users(id)',
        where: "commentable_type = 'User'",
        status: 'unenforceable',
        violations: 3,
        ddl: [],
      }),
      expect.objectContaining({ references: 'rails.posts(id)', status: 'unenforceable', violations: 1, ddl: [] }),
    ]);
  });
});
