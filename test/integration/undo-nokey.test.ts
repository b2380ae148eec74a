import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { holdLock } from '../support/locks.js';
import { expectNothingLost, ledger } from '../support/ledger.js';
import { BIN, runCli } from '../support/run.js';

let db: TestDb;
afterEach(() => db.drop());

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));

interface Undo {
  tables: { table: string; restore: number; revert: number; conflicts: number }[];
  conflicts: number;
  conflictSamples: { table: string; key: unknown[]; reason: string }[];
}

/** md5 of each note not in `skip`, sorted (a table without a primary key is a multiset of rows). */
const noteHashes = async (skip: string[]) =>
  (await db.query<{ h: string }>('select md5(x::text) as h from note x where body <> all($1) order by 1', [skip])).map(
    (r) => r.h,
  );

async function repair(args: string[]): Promise<string> {
  const res = await runCli([
    'repair',
    '--database-url',
    db.url,
    '--no-discover',
    '--apply',
    '--format',
    'json',
    ...args,
  ]);
  expect(res.code, res.stderr).toBe(0);
  return (JSON.parse(res.stdout) as { runId: string }).runId;
}

async function undo(runId: string, apply: boolean): Promise<{ code: number | null; out: Undo; stderr: string }> {
  const res = await runCli([
    'undo',
    runId,
    '--database-url',
    db.url,
    '--format',
    'json',
    ...(apply ? ['--apply'] : []),
  ]);
  return { code: res.code, out: JSON.parse(res.stdout) as Undo, stderr: res.stderr };
}

// Two orgs named acme: a merge keeps org 1 and re-points the notes of org 2 (a table without a primary key).
const NOTES = `
  create table orgs (id int primary key, name text not null, n int not null);
  insert into orgs values (1, 'acme', 10), (2, 'acme', 20), (3, 'beta', 30);
  create table note (org_id int not null references orgs (id), body text not null, n int not null, meta json);
  insert into note values (2, 'a', 1, '{"k": 1}'), (2, 'b', 2, null), (2, 'c', 3, '[]'), (2, 'd', 4, '{}'),
                          (1, 'e', 5, null), (3, 'f', 6, '{"k": 2}');
`;

describe('undo of a table without a primary key never overwrites what the application wrote since', () => {
  it('a re-pointed row moved and one deleted since: both conflicts in the dry run, left alone by --apply', async () => {
    db = await freshDatabase(NOTES);
    const original = userTables(await db.checksums());
    const before = await ledger(db);
    const others = await noteHashes(['b', 'c']);
    const runId = await repair(['--duplicates', 'orgs(name)']);
    const repointed = "select count(*)::int as n from note where org_id = 1 and body in ('a', 'b', 'c', 'd')";
    expect(await db.query(repointed)).toEqual([{ n: 4 }]);
    await expectNothingLost(db, before, [runId]);
    // The application, after the repair: note b moves to org 3, note c is deleted.
    await db.exec("update note set org_id = 3 where body = 'b'; delete from note where body = 'c'");
    const written = await db.checksums();

    const dry = await undo(runId, false);
    expect(dry.code, dry.stderr).toBe(1);
    expect(dry.out.conflicts).toBe(2);
    expect(dry.out.tables.find((t) => t.table === 'public.note')).toEqual(
      expect.objectContaining({ revert: 2, conflicts: 2 }),
    );
    expect(dry.out.conflictSamples.map((s) => [s.table, s.key[1], s.reason])).toEqual([
      ['public.note', 'b', 'changed or deleted since the repair'],
      ['public.note', 'c', 'changed or deleted since the repair'],
    ]);
    expect(await db.checksums()).toEqual(written); // the dry run changed nothing

    const applied = await undo(runId, true);
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.out.conflicts).toBe(2);
    expect(applied.out.tables.find((t) => t.table === 'public.note')).toEqual(
      expect.objectContaining({ revert: 2, conflicts: 2 }),
    );
    // Left alone: b where the application put it, c still deleted.
    expect(await db.query("select org_id, body from note where body in ('b', 'c')")).toEqual([
      { org_id: 3, body: 'b' },
    ]);
    // Every other row as before the repair, bit for bit; orgs as before.
    expect(await noteHashes(['b', 'c'])).toEqual(others);
    expect(userTables(await db.checksums())['public.orgs']).toEqual(original['public.orgs']);
    const counts = await db.query(`
      select 'note' as t, count(*)::int as rows, sum(n)::int as n from note
      union all select 'orgs', count(*)::int, sum(n)::int from orgs order by 1`);
    expect(counts).toEqual([
      { t: 'note', rows: 5, n: 1 + 2 + 4 + 5 + 6 }, // the application's delete of c (n = 3) stays
      { t: 'orgs', rows: 3, n: 60 },
    ]);
  });

  it('nothing written since: undo takes every re-pointed row back bit for bit, exit 0', async () => {
    db = await freshDatabase(NOTES);
    const original = userTables(await db.checksums());
    const before = await ledger(db);
    const runId = await repair(['--duplicates', 'orgs(name)']);
    await expectNothingLost(db, before, [runId]);
    const dry = await undo(runId, false);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.out.conflicts).toBe(0);
    const applied = await undo(runId, true);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.out.conflicts).toBe(0);
    expect(applied.out.tables.find((t) => t.table === 'public.note')).toEqual(
      expect.objectContaining({ revert: 4, conflicts: 0 }),
    );
    expect(userTables(await db.checksums())).toEqual(original);
  });

  it('a row the run re-pointed twice (both its columns point at one merged node): taken back exactly', async () => {
    // edge (2, 2) becomes (1, 2), then (1, 1): two updates of one row in one batch.
    db = await freshDatabase(`
      create table node (id int primary key, name text not null);
      insert into node values (1, 'x'), (2, 'x'), (3, 'y');
      create table edge (a_id int not null references node (id), z_id int not null references node (id), label text);
      insert into edge values (2, 2, 'loop'), (2, 3, 'out'), (3, 2, 'in'), (3, 3, 'other'), (1, 2, 'mixed');
    `);
    const original = userTables(await db.checksums());
    const before = await ledger(db);
    const runId = await repair(['--duplicates', 'node(name)']);
    await expectNothingLost(db, before, [runId]);
    expect(await db.query("select a_id, z_id from edge where label = 'loop'")).toEqual([{ a_id: 1, z_id: 1 }]);
    const dry = await undo(runId, false);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.out.conflicts).toBe(0);
    const applied = await undo(runId, true);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.out.conflicts).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });

  it('a row re-pointed twice and changed by the application since: a conflict, left alone', async () => {
    db = await freshDatabase(`
      create table node (id int primary key, name text not null);
      insert into node values (1, 'x'), (2, 'x'), (3, 'y');
      create table edge (a_id int not null references node (id), z_id int not null references node (id), label text);
      insert into edge values (2, 2, 'loop'), (2, 3, 'out'), (3, 3, 'other');
    `);
    const runId = await repair(['--duplicates', 'node(name)']);
    await db.exec("update edge set label = 'loop!' where label = 'loop'");
    const dry = await undo(runId, false);
    expect(dry.code, dry.stderr).toBe(1);
    expect(dry.out.conflicts).toBe(2); // both of its updates
    const applied = await undo(runId, true);
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.out.conflicts).toBe(2);
    expect(await db.query('select a_id, z_id, label from edge order by label')).toEqual([
      { a_id: 1, z_id: 1, label: 'loop!' },
      { a_id: 3, z_id: 3, label: 'other' },
      { a_id: 2, z_id: 3, label: 'out' },
    ]);
  });

  it('rows one update re-pointed to different parents that nothing else tells apart: named, and --apply refuses', async () => {
    // notes (2, x) and (4, x) become (1, x) and (3, x) in one statement: which was which, no column says.
    db = await freshDatabase(`
      create table orgs (id int primary key, name text not null);
      insert into orgs values (1, 'acme'), (2, 'acme'), (3, 'beta'), (4, 'beta');
      create table note (org_id int not null references orgs (id), body text not null);
      insert into note values (2, 'x'), (4, 'x'), (2, 'y');
    `);
    const runId = await repair(['--duplicates', 'orgs(name)']);
    const repaired = userTables(await db.checksums());
    const dry = await runCli(['undo', runId, '--database-url', db.url, '--format', 'json']);
    expect(dry.code, dry.stderr).toBe(1);
    const out = JSON.parse(dry.stdout) as Undo & { inexact: { table: string; reason: string }[] };
    expect(out.conflicts).toBe(0);
    expect(out.inexact).toEqual([
      expect.objectContaining({ table: 'public.note', reason: expect.stringMatching(/could not tell 2 updated row/) }),
    ]);
    const applied = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
    expect(applied.code).toBe(2);
    expect(applied.stderr).toMatch(/cannot restore every row bit for bit[\s\S]*restore them by hand/);
    expect(userTables(await db.checksums())).toEqual(repaired); // nothing changed
  });

  it('a re-pointed row the application changes after undo planned it, before its batch: counted as a conflict', async () => {
    db = await freshDatabase(NOTES);
    const others = await noteHashes(['b']);
    const runId = await repair(['--duplicates', 'orgs(name)']);
    const release = await holdLock(db, "select * from note where body = 'b' for update");
    const child = spawn(
      process.execPath,
      [BIN, 'undo', runId, '--database-url', db.url, '--apply', '--lock-timeout', '60s', '--format', 'json'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // undo planned note b as one to revert, then reached it and waits for it
    for (let i = 0; i < 400 && !/retry 1 of 5/.test(stderr); i++) await new Promise((r) => setTimeout(r, 25));
    expect(stderr).toMatch(/retry 1 of 5/);
    await release("update note set org_id = 3 where body = 'b'");
    expect(await exited, stderr).toBe(1);
    const doc = JSON.parse(stdout) as Undo;
    expect(doc.conflicts).toBe(1);
    expect(doc.tables.find((t) => t.table === 'public.note')).toEqual(
      expect.objectContaining({ revert: 3, conflicts: 1 }),
    );
    expect(await db.query("select org_id from note where body = 'b'")).toEqual([{ org_id: 3 }]);
    expect(await noteHashes(['b'])).toEqual(others);
  });
});
