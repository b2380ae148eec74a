import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { runMigration } from '../support/migration.js';
import { runCli, writeConfig } from '../support/run.js';

/**
 * An INVALID unique index left by a failed CREATE UNIQUE INDEX CONCURRENTLY, over rows that still
 * violate it: the migration must not drop it while its rebuild is held back (the table would be
 * left with no such index at all), and once the rows are repaired it rebuilds it as the object it
 * was — a plain unique index under its own name, which the application's own scripts name
 * (MusicBrainz's upgrade scripts run DROP INDEX l_recording_work_idx_uniq).
 */
const FIXTURE = `
  create table work (id int primary key, code text, label text);
  insert into work values (1, 'a', 'x'), (2, 'a', 'y'), (3, 'b', 'z');
  create table work_ref (id int primary key, work_id int not null references work, n int);
  insert into work_ref values (1, 1, 10), (2, 2, 20);
`;

let db: TestDb;
let dir: string;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  await expect(
    db.exec('create unique index concurrently work_code_uniq on work (code) include (label)'),
  ).rejects.toMatchObject({
    code: '23505',
  });
  dir = mkdtempSync(join(tmpdir(), 'rowdoctor-rebuild-'));
});
afterAll(() => db.drop());

const emit = async (name: string) => {
  const file = join(dir, name);
  const res = await runCli([
    'verify-constraints',
    '--database-url',
    db.url,
    '--config',
    '/dev/null',
    '--emit-migration',
    file,
  ]);
  expect(res.code, res.stderr).not.toBe(2);
  return { file, text: readFileSync(file, 'utf8') };
};
const index = () =>
  db.query<{ valid: boolean; def: string; constraint: string | null }>(
    `select i.indisvalid as valid, pg_get_indexdef(i.indexrelid) as def,
            (select conname from pg_constraint c where c.conindid = i.indexrelid) as constraint
       from pg_index i where i.indexrelid = 'work_code_uniq'::regclass`,
  );

describe('an INVALID unique index in the emitted migration', () => {
  it('is neither dropped nor built while rows violate it, and after the repair comes back under its own name and kind', async () => {
    const held = await emit('held.sql');
    expect(held.text).toMatch(/1 row\(s\) violate it today/);
    // Neither statement runs: both are there, commented out together.
    expect(held.text).toMatch(/\n-- DROP INDEX CONCURRENTLY IF EXISTS "public"\."work_code_uniq";/);
    expect(held.text).toMatch(/\n-- CREATE UNIQUE INDEX CONCURRENTLY "work_code_uniq"/);
    expect(held.text).not.toMatch(/\n(DROP|CREATE|ALTER) /);
    await runMigration(db.url, held.file);
    expect(await index()).toMatchObject([{ valid: false }]);

    const config = writeConfig('rules:\n  - { check: duplicate-rows, table: work, key: [code] }\n');
    const repaired = await runCli(['repair', '--database-url', db.url, '--config', config, '--no-discover', '--apply']);
    expect(repaired.code, repaired.stderr).toBe(0);

    const rebuild = await emit('rebuild.sql');
    expect(rebuild.text).toMatch(/\nDROP INDEX CONCURRENTLY IF EXISTS "public"\."work_code_uniq";/);
    expect(rebuild.text).not.toMatch(/ADD CONSTRAINT/);
    await runMigration(db.url, rebuild.file);
    // The server's word: a valid plain unique index of that name, with its INCLUDE column, owned by no constraint.
    const [after] = await index();
    expect(after).toMatchObject({ valid: true, constraint: null });
    expect(after!.def).toMatch(
      /^CREATE UNIQUE INDEX work_code_uniq ON public\.work USING btree \(code\) INCLUDE \(label\)$/,
    );
    await expect(db.exec('drop index work_code_uniq')).resolves.toBeUndefined();
  });
});
