import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableStats, type TableStats } from '../support/conservation.js';
import { freshDatabase, type TestDb } from '../support/db.js';
import { holdLock, untilBackendGone, waitingRepairPid } from '../support/locks.js';
import { runCli, writeConfig } from '../support/run.js';

/**
 * A repair whose session is terminated (as a server restart or a dropped network ends it) exits 2
 * with one paragraph: what happened, what is safe, that the same command finishes the job — never an
 * internal error or a stack trace — and the run is recorded as interrupted. Each moment is reached
 * deterministically: the repair waits on a lock another session holds, and is terminated there.
 */
const FIXTURE = `
  -- 10 groups of 4 (e0 … e9), survivor the lowest id; every user has two posts
  create table users (id int primary key, email text not null);
  insert into users select i, 'e' || (i % 10) from generate_series(1, 40) i;
  create table post (id int primary key, user_id int not null references users);
  insert into post select i, 1 + i % 40 from generate_series(1, 80) i;
  -- re-pointing the posts of user 35 (group e5, the third batch of two groups) waits for advisory lock 4242
  create function wait_for_test() returns trigger language plpgsql as $$
    begin if old.user_id = 35 then perform pg_advisory_xact_lock(4242); end if; return new; end $$;
  create trigger post_wait before update on post for each row execute function wait_for_test();
`;
const CONFIG = 'rules:\n  - { check: duplicate-rows, table: users, key: [email], repair: merge }\n';

let db: TestDb;
let config: string;
let before: TableStats;
beforeAll(async () => {
  db = await freshDatabase(FIXTURE);
  // Lock waits inside a batch last as long as --lock-timeout (at most half of deadlock_timeout).
  await db.exec(`alter database ${db.name} set deadlock_timeout = '10min'`);
  config = writeConfig(CONFIG);
  before = await tableStats(db);
});
afterAll(() => db.drop());

const repair = (...extra: string[]) =>
  runCli([
    'repair',
    '--database-url',
    db.url,
    '--config',
    config,
    '--no-discover',
    '--batch-size',
    '2',
    '--max-transaction-time',
    '0',
    '--lock-timeout',
    '5min',
    ...extra,
  ]);

/** Run `repair` with `extra`, terminate its backend once it waits for a lock, and return what it said. */
async function killedWhileWaiting(extra: string[], release: (commitWith?: string) => Promise<void>) {
  const running = repair(...extra);
  const pid = await waitingRepairPid(db);
  await db.query('select pg_terminate_backend($1)', [pid]);
  const res = await running;
  await release();
  await untilBackendGone(db, pid);
  return res;
}

function expectOneParagraph(stderr: string): void {
  expect(stderr).not.toMatch(/internal error|This is a bug/);
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(stderr.trim().split('\n')).toHaveLength(1);
}

const runRows = () =>
  db.query<{ run_id: string; status: string; error: string | null }>(
    'select run_id, status, error from rowdoctor_backup.runs order by started_at',
  );

describe('a repair whose connection is lost', () => {
  it('mid-batch, after two batches committed: exit 2, one paragraph, recorded interrupted; the re-run finishes', async () => {
    const release = await holdLock(db, 'select pg_advisory_xact_lock(4242)');
    const res = await killedWhileWaiting(['--apply'], release);
    expect(res.code).toBe(2);
    expectOneParagraph(res.stderr);
    const [run] = await runRows();
    expect(res.stderr.trim()).toMatch(
      new RegExp(
        `^rowdoctor: Repair run ${run!.run_id} lost its connection to the server \\(.+\\): .*terminated.* ` +
          `the 2 batches committed before are safe, and backed up in rowdoctor_backup under run ${run!.run_id}; ` +
          '.*The run is recorded as interrupted\\. Running the same command again finishes the job\\.$',
      ),
    );
    expect(run).toMatchObject({ status: 'interrupted' });
    expect(run!.error).toMatch(/connection to the server was lost/);
    // Two batches of two groups: 4 groups merged, 3 losers each.
    expect(Number((await db.query<{ n: string }>('select count(*) as n from users'))[0]!.n)).toBe(40 - 12);

    const rerun = await repair('--apply');
    expect(rerun.code, rerun.stderr).toBe(0);
    // Conservation: every post is kept (ids and count), 30 losers are gone, and the key now holds.
    const after = await tableStats(db);
    expect(after['public.post']!.rows).toBe(before['public.post']!.rows);
    expect(after['public.post']!.sums.id).toBe(before['public.post']!.sums.id);
    expect(after['public.users']!.rows).toBe(10);
    await db.exec('create unique index on users (email)');
    expect((await runRows()).map((r) => r.status)).toEqual(['interrupted', 'completed']);
  });

  it("while the run's bookkeeping waits, before anything is written: exit 2, one paragraph, nothing changed", async () => {
    // A run row left `running` (a process that died) that another session holds: the new run waits to record it.
    const [dead] = await runRows();
    await db.exec(`update rowdoctor_backup.runs set status = 'running' where run_id = '${dead!.run_id}'`);
    const sums = await db.checksums();
    const release = await holdLock(db, 'select * from rowdoctor_backup.runs where status = $$running$$ for update');
    const res = await killedWhileWaiting(['--apply'], release);
    expect(res.code).toBe(2);
    expectOneParagraph(res.stderr);
    expect(res.stderr.trim()).toMatch(
      /^rowdoctor: Repair run \S+ lost its connection to the server \(.+\): .* It had not started: nothing was changed\. Run the same command again\.$/,
    );
    expect(await db.checksums()).toEqual(sums);
  });

  it('in a dry run, while it copies the merge map: exit 2, one paragraph (JSON: the error document)', async () => {
    const release = await holdLock(db, 'lock table rowdoctor_backup.merges in access exclusive mode');
    const res = await killedWhileWaiting(['--format', 'json'], release);
    expect(res.code).toBe(2);
    expectOneParagraph(res.stderr);
    expect(res.stderr.trim()).toMatch(
      /^rowdoctor: Repair \(dry run\) lost its connection to the server .* run the same command again\.$/,
    );
    const doc = JSON.parse(res.stdout) as { error: { message: string; sqlstate: string | null } };
    expect(doc.error.message).toMatch(/^Repair \(dry run\) lost its connection to the server/);
  });
});
