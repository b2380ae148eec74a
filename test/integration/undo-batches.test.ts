import { spawn } from 'node:child_process';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { holdLock, waitingRepairPid } from '../support/locks.js';
import { expectNothingLost, ledger } from '../support/ledger.js';
import { BIN, runCli } from '../support/run.js';
import { until } from '../support/poll.js';

// 300 keys, each held by 2 or 3 items; every item has one child row. Repaired in fixed batches of 25
// groups: 12 batch transactions, each deleting its losers and re-pointing their children.
const FIXTURE = `
  create table item (id serial primary key, k int not null, payload text);
  insert into item (k, payload) select g, 'first ' || g from generate_series(1, 300) g;
  insert into item (k, payload) select g, 'second ' || g from generate_series(1, 300) g;
  insert into item (k, payload) select g, 'third ' || g from generate_series(1, 300) g where g % 3 = 0;
  create index on item (k);
  create table item_child (id serial primary key, item_id int not null references item (id), note text);
  create index on item_child (item_id);
  insert into item_child (item_id, note) select id, 'child of ' || id from item;
  analyze;
`;

const dbs: TestDb[] = [];
afterAll(async () => {
  for (const db of dbs) await db.drop();
});

const userTables = (sums: Record<string, string>) =>
  Object.fromEntries(Object.entries(sums).filter(([t]) => !t.startsWith('rowdoctor_backup.')));
const q = async (db: TestDb, text: string) => Number(Object.values((await db.query(text))[0]!)[0]);

let db: TestDb;
let original: Record<string, string>;
let before: Awaited<ReturnType<typeof ledger>>;
let runId: string;
let repaired: Record<string, string>;

beforeEach(async () => {
  db = await freshDatabase(FIXTURE);
  dbs.push(db);
  original = userTables(await db.checksums());
  before = await ledger(db);
  const res = await runCli([
    'repair',
    '--database-url',
    db.url,
    '--duplicates',
    'item(k)',
    '--no-discover',
    '--apply',
    '--batch-size',
    '25',
    '--max-transaction-time',
    '0',
    '--format',
    'json',
  ]);
  expect(res.code, res.stderr).toBe(0);
  runId = (JSON.parse(res.stdout) as { runId: string }).runId;
  repaired = userTables(await db.checksums());
  expect(await q(db, 'select count(*) from item')).toBe(300);
});

const undo = (...extra: string[]) =>
  runCli(['undo', runId, '--database-url', db.url, '--max-transaction-time', '0', ...extra]);

/** How many transactions the undo's batches committed: each records the repair batches it took back. */
const undoTransactions = () =>
  q(db, `select count(distinct xmin::text) from rowdoctor_backup.undone where undo_of = '${runId}'`);

/** The child row the repair's first batch re-pointed: undo takes it back in its last batch. */
const firstRepointedChild = async () => {
  const [b] = await db.query<{ t: string }>(
    "select format('rowdoctor_backup.%I', backup_table) as t from rowdoctor_backup.tables where table_name = 'item_child'",
  );
  return q(db, `select id from ${b!.t} where _rd_op = 'update' order by _rd_seq limit 1`);
};

describe('undo in batches', () => {
  it("takes the repair's batches back last first, each in its own transaction; every table's md5 as before", async () => {
    const res = await undo('--apply', '--batch-size', '60');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/APPLIED/);
    expect(res.stdout).toMatch(/the repair's 12 batches are taken back last first/);
    // 12 repair batches of about 60 backed-up rows each (25 to 26 losers, their children), at most
    // 60 rows a transaction unless one repair batch alone has more: several commits, not one.
    expect(await q(db, `select count(*) from rowdoctor_backup.undone where undo_of = '${runId}'`)).toBe(12);
    const transactions = await undoTransactions();
    expect(transactions).toBeGreaterThanOrEqual(6);
    // The restored rows themselves were written by that many transactions.
    expect(
      await q(db, "select count(distinct xmin::text) from item where payload not like 'first%'"),
    ).toBeGreaterThanOrEqual(transactions);
    expect(userTables(await db.checksums())).toEqual(original);
    await expectNothingLost(db, before, []);
    expect(await db.query('select command, status from rowdoctor_backup.runs order by started_at')).toEqual([
      { command: 'repair', status: 'completed' },
      { command: 'undo', status: 'completed' },
    ]);
    const again = await undo('--apply');
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already undone by run \S+/);
  });

  it('an undo whose connection is terminated mid-way exits 2 with one paragraph; the dry run says what remains; running it again restores every md5', async () => {
    // The application holds the child the repair's first batch re-pointed: undo's last batch waits on it.
    const release = await holdLock(db, `select * from item_child where id = ${await firstRepointedChild()} for update`);
    const killed = undo('--apply', '--batch-size', '60', '--lock-timeout', '60s');
    const pid = await waitingRepairPid(db);
    const committed = await undoTransactions();
    await db.query('select pg_terminate_backend($1)', [pid]);
    const res = await killed;
    await release();
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(
      new RegExp(
        `^rowdoctor: Undo of ${runId} lost its connection to the server .*\\d+ of the repair's 12 batches are taken back and recorded; .*again to finish`,
        'm',
      ),
    );
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect(committed).toBeGreaterThan(0);
    // Part of it is taken back: neither the repaired state nor the original.
    const partial = userTables(await db.checksums());
    expect(partial).not.toEqual(original);
    expect(partial).not.toEqual(repaired);
    const undoneBefore = await q(db, `select count(*) from rowdoctor_backup.undone where undo_of = '${runId}'`);
    expect(undoneBefore).toBeGreaterThan(0);
    expect(undoneBefore).toBeLessThan(12);

    const dry = await undo('--format', 'json');
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as { applied: boolean; restored: number; conflicts: number; batches: unknown };
    expect(plan).toMatchObject({ applied: false, conflicts: 0, batches: { batches: 12, undoneBefore } });
    expect(plan.restored).toBe(
      400 - (await q(db, "select count(*) from item where payload not like 'first%'")), // what is still deleted
    );
    const text = await undo();
    expect(text.stdout).toContain(
      `${undoneBefore} of the repair's 12 batches were taken back by an earlier, interrupted undo`,
    );

    const rerun = await undo('--apply');
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
    await expectNothingLost(db, before, []);
    expect(await db.query('select command, status from rowdoctor_backup.runs order by started_at')).toEqual([
      { command: 'repair', status: 'completed' },
      { command: 'undo', status: 'interrupted' },
      { command: 'undo', status: 'completed' },
    ]);
  });

  it("a row the application holds: undo waits at most half the server's deadlock_timeout, gives way, retries, and finishes once it is free", async () => {
    const release = await holdLock(db, `select * from item_child where id = ${await firstRepointedChild()} for update`);
    const child = spawn(
      process.execPath,
      [BIN, 'undo', runId, '--database-url', db.url, '--apply', '--lock-timeout', '60s'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // deadlock_timeout is 1s: with --lock-timeout 60s, two lock-timeout retries while the row is still
    // held show that undo gave way after its own (≤ 500 ms) lock wait, before the server would pick a
    // victim (a 60 s wait would have shown none before this test's own time ran out).
    await until('undo retries a second time', () => /retry 2 of 5/.test(stderr));
    expect(stderr).toMatch(/^rowdoctor: undo \S+: .*canceling statement due to lock timeout \(55P03\); retry 1 of 5$/m);
    await release();
    expect(await exited).toBe(0);
    expect(userTables(await db.checksums())).toEqual(original);
    await expectNothingLost(db, before, []);
  });

  it('a row the application changes after undo planned it: left as the application wrote it, and counted as a conflict (exit 1)', async () => {
    const id = await firstRepointedChild();
    const [repointed] = await db.query<{ item_id: number }>(`select item_id from item_child where id = ${id}`);
    const release = await holdLock(db, `select * from item_child where id = ${id} for update`);
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
    // undo planned the row as one to revert, then reached it in its last batch and waits for it
    await until('undo waits for the row and retries', () => /retry 1 of 5/.test(stderr));
    await release(`update item_child set note = 'edited by the application' where id = ${id}`);
    expect(await exited, stderr).toBe(1);
    const doc = JSON.parse(stdout) as { conflicts: number; reverted: number; tables: { conflicts: number }[] };
    expect(doc.conflicts).toBe(1);
    expect(doc.tables.reduce((n, t) => n + t.conflicts, 0)).toBe(1);
    expect(await db.query(`select item_id, note from item_child where id = ${id}`)).toEqual([
      { item_id: repointed!.item_id, note: 'edited by the application' },
    ]);
    const [run] = await db.query<{ counts: { conflicts: number }[] }>(
      `select counts from rowdoctor_backup.runs where undo_of = '${runId}'`,
    );
    expect(run!.counts.reduce((n, t) => n + t.conflicts, 0)).toBe(1);
  });

  it('as a role that is not a superuser (foreign keys checked at every commit) nor owns the backups: several transactions, every md5 as before', async () => {
    const role = `rd_undo_${db.name.slice(-6)}`;
    await db.exec(`
      create role ${role} login password 'pw';
      alter table item owner to ${role};
      alter table item_child owner to ${role};
      grant usage, create on schema rowdoctor_backup to ${role};
      grant select, insert, update, delete on all tables in schema rowdoctor_backup to ${role};`);
    const url = new URL(db.url);
    url.username = role;
    url.password = 'pw';
    const res = await runCli(['undo', runId, '--database-url', url.toString(), '--apply', '--batch-size', '60']);
    expect(res.code, res.stderr).toBe(0);
    expect(await undoTransactions()).toBeGreaterThanOrEqual(6);
    expect(userTables(await db.checksums())).toEqual(original);
    expect(
      await q(db, 'select count(*) from item_child c where not exists (select 1 from item i where i.id = c.item_id)'),
    ).toBe(0);
    await expectNothingLost(db, before, []);
  });

  it('a unique key added since the repair, which the restored rows would break: refused before the first batch, nothing changed', async () => {
    await db.exec('create unique index item_k_key on item (k) where k > 150');
    const dry = await undo('--format', 'json');
    expect(dry.code).toBe(1);
    expect(JSON.parse(dry.stdout).refused).toMatch(
      /public\.item: 150 key\(s\) of unique index item_k_key would be held twice/,
    );
    const res = await undo('--apply', '--batch-size', '60');
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/REFUSED — nothing was changed/);
    expect(res.stdout).toMatch(/item_k_key/);
    expect(userTables(await db.checksums())).toEqual(repaired);
    expect(await db.query("select 1 from rowdoctor_backup.runs where command = 'undo'")).toEqual([]);
  });

  it('backups of an earlier version, which did not record their batches: undone in one transaction, and it says so', async () => {
    for (const { t } of await db.query<{ t: string }>(
      "select format('rowdoctor_backup.%I', backup_table) as t from rowdoctor_backup.tables",
    ))
      await db.exec(`alter table ${t} drop column _rd_batch`);
    const res = await undo('--apply', '--batch-size', '60');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/did not record its batches: undone in one transaction/);
    expect(res.stderr).toMatch(/undoing it in one transaction/);
    expect(await q(db, "select count(distinct xmin::text) from item where payload not like 'first%'")).toBe(1);
    expect(userTables(await db.checksums())).toEqual(original);
  });
});
