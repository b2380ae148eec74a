import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { expectNothingLost, ledger } from '../support/ledger.js';
import { runCli, writeConfig } from '../support/run.js';

let db: TestDb;
afterEach(() => db.drop());

const MERGE = 'rules:\n  - check: duplicate-rows\n    table: users\n    key: [email]\n    repair: merge\n';
const ORPHANS =
  'rules:\n  - check: orphaned-rows\n    table: audit\n    column: owner_ref\n    references: users.id\n    repair: delete\n';

async function repair(config: string, ...extra: string[]) {
  const res = await runCli([
    'repair',
    '--config',
    writeConfig(config),
    '--no-discover',
    '--format',
    'json',
    '--database-url',
    db.url,
    ...extra,
  ]);
  return { ...res, doc: JSON.parse(res.stdout) as { runId: string; actions: Record<string, number>[] } };
}

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));

describe('the merge map', () => {
  it('an orphan whose key is a merged-away row is re-pointed to its survivor in a later run, not deleted', async () => {
    // audit.owner_ref points at users through a reference the database does not enforce and no
    // rule declares: the merge cannot follow it, and leaves those rows naming deleted losers
    db = await freshDatabase(`
      create table users (id int primary key, email text not null);
      insert into users values (1, 'a'), (2, 'a'), (3, 'b'), (4, 'b'), (5, 'c');
      create table audit (id int primary key, owner_ref int, n int not null);
      insert into audit values (1, 1, 10), (2, 2, 20), (3, 4, 30), (4, 5, 40), (5, 999, 50);
    `);
    const merged = await repair(MERGE, '--apply');
    expect(merged.code, merged.stderr).toBe(0); // 2 → 1, 4 → 3
    const afterMerge = userTables(await db.checksums());

    const dry = await repair(ORPHANS);
    expect(dry.doc.actions[0]).toMatchObject({ groups: 3, redirected: 2, rowsDeleted: 1 });
    const res = await repair(ORPHANS, '--apply');
    expect(res.code).toBe(0);
    expect(res.doc.actions).toEqual(dry.doc.actions);
    expect(await db.query('select id, owner_ref from audit order by id')).toEqual([
      { id: 1, owner_ref: 1 },
      { id: 2, owner_ref: 1 },
      { id: 3, owner_ref: 3 },
      { id: 4, owner_ref: 5 },
    ]);
    expect(await db.query('select sum(n)::int as n from audit')).toEqual([{ n: 100 }]); // only the true orphan went

    const undo = await runCli(['undo', res.doc.runId, '--apply', '--database-url', db.url]);
    expect(undo.code, undo.stderr).toBe(0);
    expect(userTables(await db.checksums())).toEqual(afterMerge);
  });

  it('a merge since undone redirects nothing: a later orphan of the restored row is an orphan', async () => {
    db = await freshDatabase(`
      create table users (id int primary key, email text not null);
      insert into users values (1, 'a'), (2, 'a');
      create table audit (id int primary key, owner_ref int, n int not null);
      insert into audit values (1, 1, 10);
    `);
    const merged = await repair(MERGE, '--apply');
    expect(merged.code, merged.stderr).toBe(0);
    const undo = await runCli(['undo', merged.doc.runId, '--apply', '--database-url', db.url]);
    expect(undo.code, undo.stderr).toBe(0);
    // User 2 lives on as itself: it gets a row of its own, and is then deleted.
    await db.exec(
      "update users set email = 'b' where id = 2; insert into audit values (2, 2, 20); delete from users where id = 2",
    );
    const dry = await repair(ORPHANS);
    expect(dry.doc.actions[0]).toMatchObject({ groups: 1, redirected: 0, rowsDeleted: 1 });
  });

  it("in one run, a later orphan rule follows this run's merges: the dry run re-points what the apply does", async () => {
    db = await freshDatabase(`
      create table users (id int primary key, email text not null);
      insert into users values (1, 'a'), (2, 'a'), (3, 'b');
      create table audit (id int primary key, owner_ref int, n int not null);
      insert into audit values (1, 2, 10), (2, 1, 20), (3, 999, 30);
    `);
    // An earlier run merged user 2 into 1 without following audit (not declared then): audit 1 names 2.
    const first = await repair(MERGE, '--apply');
    expect(first.code, first.stderr).toBe(0);
    // Now user 1 is a duplicate of 3, merged into it by this run's first rule (audit 2 moves along);
    // its second rule finds audit 1 an orphan whose key was merged into 1, which this run merges into 3.
    await db.exec("update users set email = 'b' where id = 1");
    const before = await ledger(db);
    const config = `${MERGE.replace('    repair: merge', '    keep:\n      orderBy: [id desc]\n    repair: merge')}${ORPHANS.replace('rules:\n', '')}`;
    const mapped = () => db.query('select count(*)::int as n from rowdoctor_backup.merges');
    const mappedBefore = await mapped();
    const dry = await repair(config);
    expect(dry.code, dry.stderr).toBe(1);
    expect(dry.doc.actions[1]).toMatchObject({ groups: 2, redirected: 1, rowsDeleted: 1 });
    expect(await mapped()).toEqual(mappedBefore); // the dry run kept its map in pg_temp
    const res = await repair(config, '--apply');
    expect(res.code, res.stderr).toBe(0);
    expect(res.doc.actions).toEqual(dry.doc.actions);
    expect(await db.query('select id, owner_ref from audit order by id')).toEqual([
      { id: 1, owner_ref: 3 },
      { id: 2, owner_ref: 3 },
    ]);
    await expectNothingLost(db, before, [res.doc.runId]);
  });
});
