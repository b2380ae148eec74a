import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { holdLock, untilRepairWaits } from '../support/locks.js';
import { expectNothingLost, ledger } from '../support/ledger.js';
import { BIN, runCli, writeConfig } from '../support/run.js';
import { until } from '../support/poll.js';

// groups: keys 1..N, each held by 2 or 3 items; every item has one child row.
const fixture = (groups: number) => `
  create table item (id serial primary key, k int not null, payload text);
  insert into item (k, payload) select g, 'first ' || g from generate_series(1, ${groups}) g;
  insert into item (k, payload) select g, 'second ' || g from generate_series(1, ${groups}) g;
  insert into item (k, payload) select g, 'third ' || g from generate_series(1, ${groups}) g where g % 3 = 0;
  create index on item (k);
  create table item_child (id serial primary key, item_id int not null references item (id));
  create index on item_child (item_id);
  insert into item_child (item_id) select id from item;
  analyze;
`;
const dbs: TestDb[] = [];
async function database(groups: number): Promise<TestDb> {
  const db = await freshDatabase(fixture(groups));
  dbs.push(db);
  return db;
}
afterAll(async () => {
  for (const db of dbs) await db.drop();
});

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));
const repairArgs = (db: TestDb, ...extra: string[]) => [
  'repair',
  '--database-url',
  db.url,
  '--duplicates',
  'item(k)',
  '--no-discover',
  '--format',
  'json',
  ...extra,
];
const q = async (db: TestDb, text: string) => Number(Object.values((await db.query(text))[0]!)[0]);

describe('repair under faults', () => {
  it('killed with SIGKILL mid-run, then re-run: the same final state as an uninterrupted run, backups consistent', async () => {
    // 1000 groups in batches of 25: 40 transactions, so the kill comes between two of them, mid-run
    const [killed, clean] = [await database(1000), await database(1000)];
    const itemsBefore = await q(killed, 'select count(*) from item');
    const killedBefore = await ledger(killed);

    const uninterrupted = await runCli(repairArgs(clean, '--apply', '--batch-size', '25'));
    expect(uninterrupted.code).toBe(0);

    const child = spawn(process.execPath, [BIN, ...repairArgs(killed, '--apply', '--batch-size', '25')], {
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    // Wait until some batches have committed, then kill it without warning.
    await until('100 deletions are backed up', async () => {
      const done = (await q(
        killed,
        "select count(*) from pg_tables where schemaname = 'rowdoctor_backup' and tablename like '%_item'",
      ))
        ? await q(
            killed,
            `select count(*) from rowdoctor_backup."${await q(killed, "select 'item'::regclass::oid")}_item" where _rd_op = 'delete'`,
          )
        : 0;
      return done >= 100;
    });
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const afterKill = await q(killed, 'select count(*) from item');
    expect(afterKill).toBeLessThan(itemsBefore);
    expect(afterKill).toBeGreaterThan(1000); // the kill really came mid-run
    // The killed run's counts are those of the batches it committed: each batch records them with its work.
    const [dead] = await killed.query<{ counts: Record<string, number>[] }>('select counts from rowdoctor_backup.runs');
    const childOid = await q(killed, "select 'item_child'::regclass::oid");
    expect(dead!.counts).toEqual([
      expect.objectContaining({
        rowsDeleted: itemsBefore - afterKill,
        childRowsRepointed: await q(killed, `select count(*) from rowdoctor_backup."${childOid}_item_child"`),
      }),
    ]);

    const rerun = await runCli(repairArgs(killed, '--apply', '--batch-size', '25'));
    expect(rerun.code).toBe(0);
    expect(userTables(await killed.checksums())).toEqual(userTables(await clean.checksums()));
    await expectNothingLost(killed, killedBefore);

    // Every deleted item is in the backup exactly once, across both runs.
    const itemOid = await q(killed, "select 'item'::regclass::oid");
    const backedUp = await killed.query<{ n: string; distinct_ids: string; still_there: string }>(`
      select count(*) as n, count(distinct id) as distinct_ids, count(*) filter (where id in (select id from item)) as still_there
        from rowdoctor_backup."${itemOid}_item" where _rd_op = 'delete'`);
    expect(backedUp[0]).toEqual({
      n: String(itemsBefore - 1000),
      distinct_ids: String(itemsBefore - 1000),
      still_there: '0',
    });
    expect(await killed.query('select status from rowdoctor_backup.runs order by started_at')).toEqual([
      { status: 'interrupted' }, // found dead by the re-run
      { status: 'completed' },
    ]);
  }, 120_000);

  it('a row held locked by another session costs exactly its group: the rest of the batch goes on, the group is retried, skipped with its reason (JSON and stderr), and a later run finishes it', async () => {
    const db = await database(10);
    const release = await holdLock(db, 'select * from item where k = 2 for update'); // in the first batch of 5 groups
    const before = await db.query('select k, count(*)::int as n from item where k = 2 group by k');
    const children = await db.query('select count(*)::int as n, sum(id)::int as s from item_child');
    const ledgerBefore = await ledger(db);
    const res = await runCli(repairArgs(db, '--apply', '--batch-size', '5'));
    expect(res.code).toBe(1);
    const doc = JSON.parse(res.stdout);
    expect(doc.actions[0]).toMatchObject({
      groups: 9,
      skipped: 1,
      skippedGroups: [{ key: [2], ids: [2, 12], reason: expect.stringMatching(/held by another transaction/) }],
    });
    // Without a terminal, the set-aside retries and the skip are each one line on stderr.
    expect(res.stderr).toMatch(/^rowdoctor: public\.item: 1 group set aside .*; retry 1 of 3/m);
    expect(res.stderr).toMatch(/^rowdoctor: public\.item: 1 group skipped: its rows were held by another transaction/m);
    expect(res.stderr).not.toMatch(/at .*\.js:\d+/);
    expect(await db.query('select k, count(*)::int as n from item where k = 2 group by k')).toEqual(before);
    expect(await q(db, 'select count(*) from item where k <> 2')).toBe(9); // the rest of its batch was done
    expect(await db.query('select count(*)::int as n, sum(id)::int as s from item_child')).toEqual(children);
    await release();
    const rerun = await runCli(repairArgs(db, '--apply', '--batch-size', '5'));
    expect(rerun.code).toBe(0);
    expect(await q(db, 'select count(*) from item')).toBe(10);
    expect(await db.query('select count(*)::int as n, sum(id)::int as s from item_child')).toEqual(children);
    await expectNothingLost(db, ledgerBefore);
  });

  it('a lock cycle with the application (child then parent) ends with the application committing: rowdoctor yields', async () => {
    const db = await database(3); // group 1: item 1 survives, item 4 is the loser; item_child 4 points at item 4
    await db.exec(
      'create table item_a_note (id int primary key, item_id int references item (id)); insert into item_a_note values (1, 4);',
    );
    const sums = async () =>
      db.query('select count(*)::int as n, sum(item_id)::int as s, sum(id)::int as i from item_child');
    const before = await sums();
    // The application: it has updated an order (a child of the loser) and will next update its account.
    const app = new pg.Client(db.url);
    await app.connect();
    await app.query('begin');
    await app.query('update item_child set item_id = item_id where id = 4');
    // A second session holds the loser's other child: a batch that locks parents first waits here, holding the loser.
    const release = await holdLock(db, 'select * from item_a_note for update');
    const repair = runCli(repairArgs(db, '--apply'));
    // Until the repair waits on a lock, or has done the groups nobody holds (and set the loser's group aside).
    await until(
      'the repair waits on a lock or has done the groups nobody holds',
      async () =>
        (await q(
          db,
          "select count(*) from pg_stat_activity where application_name = 'rowdoctor' and wait_event_type = 'Lock'",
        )) > 0 || (await q(db, 'select count(*) from item where k > 1')) === 2,
    );
    const appPid = (await app.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    const update = app.query("update item set payload = 'app' where id = 4").then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    // Until the application's update is done or waits.
    await until(
      'the application’s update is done or waits',
      async () =>
        (await q(
          db,
          `select count(*) from pg_stat_activity where pid = ${appPid} and (state = 'idle in transaction' or wait_event_type = 'Lock')`,
        )) > 0,
    );
    await release();
    expect(await update).toBeNull(); // never the deadlock victim
    await app.query('commit');
    await app.end();
    const res = await repair;
    // The group is done in this run's retries, or (on a slow machine) skipped and done by the next run.
    if (res.code !== 0) {
      expect(JSON.parse(res.stdout).actions[0]).toMatchObject({ skipped: 1 });
      expect((await runCli(repairArgs(db, '--apply'))).code).toBe(0);
    }
    expect(await q(db, 'select count(*) from item')).toBe(3);
    expect(await q(db, 'select count(*) from item_child where item_id = 1')).toBe(2);
    expect(await q(db, 'select item_id from item_a_note')).toBe(1);
    const after = await sums();
    expect([after[0]!.n, after[0]!.i]).toEqual([before[0]!.n, before[0]!.i]);
  });

  it('a writer inserting duplicates during the repair: no error, nothing lost, only rows inserted after their batch remain', async () => {
    const db = await database(1000);
    const before = await q(db, 'select count(*) from item');
    const maxBefore = await q(db, 'select max(id) from item');
    const writer = new pg.Client(db.url);
    await writer.connect();
    let inserted = 0;
    let stop = false;
    const writing = (async () => {
      // Bounded and paced: this is about correctness under concurrency, not load.
      while (!stop && inserted < 3000) {
        await writer.query('insert into item (k, payload) values ($1, $2)', [
          1 + Math.floor(Math.random() * 1100),
          'concurrent',
        ]);
        inserted++;
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const res = await runCli(repairArgs(db, '--apply', '--batch-size', '50'));
    stop = true;
    await writing;
    await writer.end();
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(inserted).toBeGreaterThan(0);
    const itemOid = await q(db, "select 'item'::regclass::oid");
    const deleted = await q(db, `select count(*) from rowdoctor_backup."${itemOid}_item" where _rd_op = 'delete'`);
    expect((await q(db, 'select count(*) from item')) + deleted).toBe(before + inserted);
    // Any duplicate left involves a row the writer inserted (after that key's batch had passed).
    const leftovers = await db.query<{ k: number; newest: number }>(
      'select k, max(id) as newest from item group by k having count(*) > 1',
    );
    for (const g of leftovers) expect(g.newest).toBeGreaterThan(maxBefore);
    // The two really overlapped: some of the writer's rows were merged away, or are left for the next run.
    const mergedWriterRows = await q(
      db,
      `select count(*) from rowdoctor_backup."${itemOid}_item" where _rd_op = 'delete' and payload = 'concurrent'`,
    );
    expect(mergedWriterRows + leftovers.length).toBeGreaterThan(0);
  }, 120_000);

  it.each([
    ['not indexed: left for the next run', false],
    ['indexed: taken by its batch', true],
  ])(
    'orphans: a parent that appears before its batch saves its children; a child added after the listing — owner_id %s',
    async (_, indexed) => {
      // owners 1..1000 exist; keys 1001..1020 dangle, two pets each.
      const db = await freshDatabase(`
      create table owner (id int primary key);
      insert into owner select generate_series(1, 1000);
      create table pet (id serial primary key, owner_id int);
      insert into pet (owner_id) select 1 + g % 1000 from generate_series(1, 3000) g;
      insert into pet (owner_id) select 1001 + g % 20 from generate_series(0, 39) g;
      ${indexed ? 'create index on pet (owner_id);' : ''}
    `);
      dbs.push(db);
      // Writes to pet wait: batch 1 (keys 1001–1005) locks its rows, then waits to delete them.
      const release = await holdLock(db, 'lock table pet in share mode');
      const repair = runCli([
        'repair',
        '--database-url',
        db.url,
        '--orphans',
        'pet.owner_id -> owner.id',
        '--no-discover',
        '--apply',
        '--batch-size',
        '5',
        '--lock-timeout',
        '20s',
        '--format',
        'json',
      ]);
      await untilRepairWaits(db);
      // Batch 2 (keys 1006–1010) has not run yet: owner 1007 appears, and a new pet takes key 1008.
      await release('insert into owner values (1007); insert into pet (id, owner_id) values (9999, 1008)');
      const res = await repair;
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout).actions[0]).toMatchObject({
        groups: 19,
        rowsDeleted: indexed ? 39 : 38,
        skipped: 0,
      });
      expect(await db.query('select id, owner_id from pet where owner_id > 1000 order by id')).toEqual([
        ...(await db.query('select id, owner_id from pet where owner_id = 1007 order by id')),
        ...(indexed ? [] : [{ id: 9999, owner_id: 1008 }]),
      ]);
      expect(await q(db, 'select count(*) from pet where owner_id = 1007')).toBe(2);
    },
  );

  it.each([
    ['not indexed: left for the next run', false],
    ['indexed: taken by its batch', true],
  ])(
    'soft-delete conflicts: a deleted row that takes a conflicting key after the listing — name %s',
    async (_, indexed) => {
      // names n01..n20: one live and one soft-deleted row each; 1000 other live names.
      const db = await freshDatabase(`
      create table tag (id int primary key, name text not null, deleted_at timestamptz);
      insert into tag select g, 'n' || lpad(g::text, 2, '0'), null from generate_series(1, 20) g;
      insert into tag select 100 + g, 'n' || lpad(g::text, 2, '0'), now() from generate_series(1, 20) g;
      insert into tag select 1000 + g, 'other' || g, null from generate_series(1, 1000) g;
      ${indexed ? 'create index on tag (name);' : ''}
    `);
      dbs.push(db);
      const release = await holdLock(db, 'lock table tag in share mode'); // holds up batch 1 (n01–n05) at its delete
      const repair = runCli([
        'repair',
        '--database-url',
        db.url,
        '--config',
        writeConfig('rules:\n  - { check: soft-delete-conflicts, table: tag, key: [name], repair: purge-deleted }\n'),
        '--no-discover',
        '--apply',
        '--batch-size',
        '5',
        '--lock-timeout',
        '20s',
        '--format',
        'json',
      ]);
      await untilRepairWaits(db);
      await release("insert into tag values (9999, 'n08', now())"); // batch 2 (n06–n10) has not run yet
      const res = await repair;
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout).actions[0]).toMatchObject({
        groups: 20,
        rowsDeleted: indexed ? 21 : 20,
        skipped: 0,
      });
      expect(await db.query('select id from tag where deleted_at is not null order by id')).toEqual(
        indexed ? [] : [{ id: 9999 }],
      );
    },
  );

  it('Ctrl-C: the current batch finishes, no new one starts, a message says to re-run; the re-run finishes', async () => {
    const db = await database(1000);
    const child = spawn(process.execPath, [BIN, ...repairArgs(db, '--apply', '--batch-size', '25')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await until(
      'the first batch is backed up',
      async () =>
        (await q(
          db,
          "select count(*) from pg_tables where schemaname = 'rowdoctor_backup' and tablename like '%_item'",
        )) > 0,
    );
    child.kill('SIGINT');
    expect(await exited).toBe(1);
    expect(stderr).toMatch(/interrupted — finishing the current batch/);
    expect(await q(db, 'select count(*) from item')).toBeGreaterThan(1000);
    expect(await db.query('select status from rowdoctor_backup.runs')).toEqual([{ status: 'interrupted' }]);
    expect(JSON.parse(stdout).applied).toBe(true);
    expect((await runCli(repairArgs(db, '--apply'))).code).toBe(0);
    expect(await q(db, 'select count(*) from item')).toBe(1000);
  }, 60_000);

  it('two repairs on one database never run at once', async () => {
    const db = await database(5);
    const other = new pg.Client(db.url);
    await other.connect();
    await other.query("select pg_advisory_lock(hashtextextended('rowdoctor.repair', 0))");
    const res = await runCli(repairArgs(db, '--apply'));
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/Another rowdoctor repair or undo is running on this database \(backend pid \d+/);
    expect(await q(db, 'select count(*) from item')).toBe(11);
    await other.end();
  });

  it('a role without write privileges: exit 2 naming the privilege, nothing changed', async () => {
    const db = await database(5);
    const role = `rd_ro_${db.name.slice(-6)}`;
    await db.exec(
      `create role ${role} login password 'ro'; grant usage on schema public to ${role}; grant select on all tables in schema public to ${role};`,
    );
    const url = new URL(db.url);
    url.username = role;
    url.password = 'ro';
    const before = await db.checksums();
    const scan = await runCli(['scan', '--database-url', url.toString(), '--duplicates', 'item(k)']);
    expect(scan.code).toBe(1);
    const res = await runCli(['repair', '--database-url', url.toString(), '--duplicates', 'item(k)', '--apply']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(
      new RegExp(
        `Role "${role}" lacks privileges this repair needs: DELETE on public.item; UPDATE on public.item; UPDATE on public.item_child`,
      ),
    );
    expect(res.stderr).not.toContain(':ro@');
    expect(await db.checksums()).toEqual(before);
  });
});
