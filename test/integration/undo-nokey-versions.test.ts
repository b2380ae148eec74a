import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { expectNothingLost, ledger } from '../support/ledger.js';
import { runCli, writeConfig } from '../support/run.js';

let db: TestDb;
afterEach(() => db.drop());

interface Undo {
  tables: { table: string; restore: number; revert: number; conflicts: number }[];
  conflicts: number;
  conflictSamples: { table: string; key: unknown[]; reason: string }[];
}

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));

// Laravel's default morphToMany pivot: no primary key, no unique index. Users 1 and 3 share an
// email; the merge re-points user 3's pivot rows to user 1, and (1, 'user', 3) becomes (1, 'user', 1):
// in every column the same as user 1's own row, which the run never touched.
const PIVOT = `
  create table users (id bigserial primary key, email text not null);
  insert into users (email) values ('a@x'), ('b@x'), ('a@x');
  create table tags (id bigserial primary key, name text);
  insert into tags (name) values ('t1'), ('t2');
  create table taggables (tag_id bigint not null references tags, taggable_type text not null, taggable_id bigint not null);
  create index on taggables (taggable_type, taggable_id);
  insert into taggables values (1, 'user', 1), (1, 'user', 3), (2, 'user', 3);
`;

const MERGE_USERS = `
rules: [ { check: duplicate-rows, table: users, key: [email], repair: merge } ]
references: [ { table: taggables, polymorphic: { type: taggable_type, id: taggable_id }, types: { user: users } } ]
`;

async function repair(config: string): Promise<string> {
  const res = await runCli([
    'repair',
    '--database-url',
    db.url,
    '--config',
    writeConfig(config),
    '--no-discover',
    '--apply',
    '--format',
    'json',
  ]);
  expect(res.code, res.stderr).toBe(0);
  return (JSON.parse(res.stdout) as { runId: string }).runId;
}

async function undo(runId: string, ...args: string[]): Promise<{ code: number | null; out: Undo; stderr: string }> {
  const res = await runCli(['undo', runId, '--database-url', db.url, '--format', 'json', ...args]);
  return { code: res.code, out: JSON.parse(res.stdout) as Undo, stderr: res.stderr };
}

const pivot = () =>
  db.query<{ tag_id: string; taggable_type: string; taggable_id: string }>(
    'select tag_id::int, taggable_type, taggable_id::int from taggables order by 1, 2, 3',
  );

/** The xmin of user 1's own pivot row before the repair, and of the row the repair moved next to it. */
async function versions(untouched: string): Promise<{ untouched: string; repaired: string }> {
  const rows = await db.query<{ v: string }>(
    "select xmin::text as v from taggables where (tag_id, taggable_type, taggable_id) = (1, 'user', 1)",
  );
  expect(rows.map((r) => r.v).sort()).toEqual([untouched, expect.any(String)].sort());
  const repaired = rows.map((r) => r.v).find((v) => v !== untouched)!;
  return { untouched, repaired };
}

const untouchedVersion = async () =>
  (await db.query<{ v: string }>('select xmin::text as v from taggables where taggable_id = 1'))[0]!.v;

/**
 * The merge, then the application deletes one of the two identical (1, 'user', 1) rows — the one of
 * the given row version — then undo's dry run and --apply, which must agree on the exit code and conflicts.
 */
async function deleteThenUndo(
  version: 'untouched' | 'repaired',
  expected: { code: number; conflicts: number },
): Promise<{ applied: Awaited<ReturnType<typeof undo>>; untouched: string }> {
  db = await freshDatabase(PIVOT);
  const untouched = await untouchedVersion();
  const runId = await repair(MERGE_USERS);
  const v = await versions(untouched);
  await db.exec(`delete from taggables where ctid = (select ctid from taggables
                  where (tag_id, taggable_type, taggable_id) = (1, 'user', 1) and xmin = '${v[version]}'::xid limit 1)`);
  const dry = await undo(runId);
  expect(dry.code, dry.stderr).toBe(expected.code);
  expect(dry.out.conflicts).toBe(expected.conflicts);
  const applied = await undo(runId, '--apply');
  expect(applied.code, applied.stderr).toBe(expected.code);
  expect(applied.out.conflicts).toBe(expected.conflicts);
  return { applied, untouched };
}

describe('undo of a keyless pivot tells a re-pointed row from its identical sibling by row version', () => {
  it('takes back a re-pointed row identical to a row the run never touched, bit for bit, exit 0', async () => {
    db = await freshDatabase(PIVOT);
    const original = userTables(await db.checksums());
    const before = await ledger(db);
    const runId = await repair(MERGE_USERS);
    await expectNothingLost(db, before, [runId]);
    expect(await pivot()).toEqual([
      { tag_id: 1, taggable_type: 'user', taggable_id: 1 },
      { tag_id: 1, taggable_type: 'user', taggable_id: 1 },
      { tag_id: 2, taggable_type: 'user', taggable_id: 1 },
    ]);
    const dry = await undo(runId);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.out.conflicts).toBe(0);
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.out.conflicts).toBe(0);
    expect(applied.out.tables.find((t) => t.table === 'public.taggables')).toEqual(
      expect.objectContaining({ revert: 2, conflicts: 0 }),
    );
    expect(userTables(await db.checksums())).toEqual(original);
  });

  it('the application deleted the untouched sibling: undo takes the moved row back to user 3', async () => {
    await deleteThenUndo('untouched', { code: 0, conflicts: 0 });
    // User 1's tag stays deleted (the application's doing); user 3 has its two tags back.
    expect(await pivot()).toEqual([
      { tag_id: 1, taggable_type: 'user', taggable_id: 3 },
      { tag_id: 2, taggable_type: 'user', taggable_id: 3 },
    ]);
    expect(await db.query('select id::int, email from users order by id')).toEqual([
      { id: 1, email: 'a@x' },
      { id: 2, email: 'b@x' },
      { id: 3, email: 'a@x' },
    ]);
  });

  it('the application deleted the moved row: a conflict, and user 1 keeps its own row', async () => {
    const { applied, untouched } = await deleteThenUndo('repaired', { code: 1, conflicts: 1 });
    expect(applied.out.conflictSamples).toEqual([
      { table: 'public.taggables', key: [1, 'user', 3], reason: 'changed or deleted since the repair' },
    ]);
    expect(await pivot()).toEqual([
      { tag_id: 1, taggable_type: 'user', taggable_id: 1 },
      { tag_id: 2, taggable_type: 'user', taggable_id: 3 },
    ]);
    expect(await db.query('select xmin::text as v from taggables where tag_id = 1')).toEqual([{ v: untouched }]);
  });

  it('the application changed the moved row: a conflict, its row left as it wrote it', async () => {
    db = await freshDatabase(PIVOT);
    const untouched = await untouchedVersion();
    const runId = await repair(MERGE_USERS);
    const v = await versions(untouched);
    await db.exec(`update taggables set tag_id = 2 where tag_id = 1 and xmin = '${v.repaired}'::xid`);
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(1);
    expect(applied.out.conflicts).toBe(1);
    expect(applied.out.tables.find((t) => t.table === 'public.taggables')).toEqual(
      expect.objectContaining({ revert: 1, conflicts: 1 }),
    );
    // The untouched row and the application's row stay; the other moved row goes back to user 3.
    expect(await pivot()).toEqual([
      { tag_id: 1, taggable_type: 'user', taggable_id: 1 },
      { tag_id: 2, taggable_type: 'user', taggable_id: 1 },
      { tag_id: 2, taggable_type: 'user', taggable_id: 3 },
    ]);
  });

  it('a row re-pointed twice in one batch, then identical to an untouched row: taken back exactly', async () => {
    // edge (2, 2) becomes (1, 2), then (1, 1), as the untouched (1, 1) is.
    db = await freshDatabase(`
      create table node (id int primary key, name text not null);
      insert into node values (1, 'x'), (2, 'x'), (3, 'y');
      create table edge (a_id int not null references node (id), z_id int not null references node (id), label text);
      insert into edge values (2, 2, 'loop'), (1, 1, 'loop'), (2, 3, 'out'), (3, 3, 'other');
    `);
    const original = userTables(await db.checksums());
    const res = await runCli([
      'repair',
      '--database-url',
      db.url,
      '--no-discover',
      '--apply',
      '--format',
      'json',
      '--duplicates',
      'node(name)',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const runId = (JSON.parse(res.stdout) as { runId: string }).runId;
    expect(await db.query("select a_id, z_id from edge where label = 'loop'")).toEqual([
      { a_id: 1, z_id: 1 },
      { a_id: 1, z_id: 1 },
    ]);
    const dry = await undo(runId);
    expect(dry.code, dry.stderr).toBe(0);
    const applied = await undo(runId, '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.out.conflicts).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });

  it('a row two rules re-pointed, undone one repair batch per transaction: taken back exactly', async () => {
    // Tags 1 and 2 are both t1: (2, 'user', 3) becomes (1, 'user', 3) in the first rule's batch,
    // then (1, 'user', 1) in the second's, as user 1's untouched row is.
    db = await freshDatabase(`
      create table users (id bigserial primary key, email text not null);
      insert into users (email) values ('a@x'), ('b@x'), ('a@x');
      create table tags (id bigserial primary key, name text);
      insert into tags (name) values ('t1'), ('t1');
      create table taggables (tag_id bigint not null references tags, taggable_type text not null, taggable_id bigint not null);
      insert into taggables values (1, 'user', 1), (2, 'user', 3), (2, 'user', 2);
    `);
    const original = userTables(await db.checksums());
    const runId = await repair(`
rules:
  - { check: duplicate-rows, table: tags, key: [name], repair: merge }
  - { check: duplicate-rows, table: users, key: [email], repair: merge }
references: [ { table: taggables, polymorphic: { type: taggable_type, id: taggable_id }, types: { user: users } } ]
`);
    expect(await pivot()).toEqual([
      { tag_id: 1, taggable_type: 'user', taggable_id: 1 },
      { tag_id: 1, taggable_type: 'user', taggable_id: 1 },
      { tag_id: 1, taggable_type: 'user', taggable_id: 2 },
    ]);
    const dry = await undo(runId);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.out.conflicts).toBe(0);
    const applied = await undo(runId, '--apply', '--batch-size', '1');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.out.conflicts).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });

  it('a keyless join table whose untouched rows share the column the merge kept: taken back exactly', async () => {
    // (1, 3) becomes (1, 1): post 1's other tags hold its post_id too, which alone told rows apart before.
    db = await freshDatabase(`
      create table tags (id int primary key, name text not null);
      insert into tags values (1, 'red'), (2, 'blue'), (3, 'red'), (4, 'green');
      create table posts_tags (post_id int not null, tag_id int not null references tags (id));
      insert into posts_tags values (1, 3), (1, 2), (1, 4), (2, 1);
    `);
    const original = userTables(await db.checksums());
    const res = await runCli([
      'repair',
      '--database-url',
      db.url,
      '--no-discover',
      '--apply',
      '--format',
      'json',
      '--duplicates',
      'tags(name)',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const applied = await undo((JSON.parse(res.stdout) as { runId: string }).runId, '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.out.conflicts).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
  });

  it('a run that recorded no row versions (an earlier version): --apply still refuses, nothing changed', async () => {
    db = await freshDatabase(PIVOT);
    const runId = await repair(MERGE_USERS);
    const [row] = await db.query<{ backup: string }>(
      "select backup_table as backup from rowdoctor_backup.tables where table_name = 'taggables'",
    );
    await db.exec(`update rowdoctor_backup."${row!.backup}" set _rd_xmin = null`);
    const repaired = userTables(await db.checksums());
    const applied = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
    expect(applied.code).toBe(2);
    expect(applied.stderr).toMatch(/cannot tell the 2 updated row\(s\) apart/);
    expect(userTables(await db.checksums())).toEqual(repaired);
  });
});
