import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from '../support/db.js';
import { holdLock, untilBackendGone, untilNoRowdoctorSessions, waitingRepairPid } from '../support/locks.js';
import { runCli, writeConfig } from '../support/run.js';

const FIXTURE = `
  create table users (id int primary key, email text not null);
  insert into users select i, 'u' || (i % 5) || '@x' from generate_series(1, 20) i;
  create table token (id int primary key, user_id int);
  insert into token select i, case when i % 4 = 0 then 900 + i else 1 + i % 20 end from generate_series(1, 40) i;
`;
const MERGE = `rules:\n  - check: duplicate-rows\n    table: users\n    key: [email]\n    repair: merge\n`;
const ORPHANS = `rules:\n  - check: orphaned-rows\n    table: token\n    column: user_id\n    references: users.id\n    repair: delete\n`;

interface RunJson {
  runId: string;
  command: string;
  started: string;
  finished: string | null;
  status: string;
  applied: boolean;
  undone: boolean;
  undoOf: string | null;
  rules: string[];
  counts: Record<string, number>;
  error: string | null;
}

let db: TestDb;
beforeEach(async () => {
  db = await freshDatabase(FIXTURE);
});
afterEach(() => db.drop());

const repair = (config: string, ...extra: string[]) =>
  runCli(['repair', '--database-url', db.url, '--config', writeConfig(config), '--no-discover', ...extra]);

async function runs(): Promise<RunJson[]> {
  const res = await runCli(['runs', '--database-url', db.url, '--format', 'json']);
  expect(res.code).toBe(0);
  return (JSON.parse(res.stdout) as { runs: RunJson[] }).runs;
}

describe('rowdoctor runs', () => {
  it('on a database never repaired: says so, exit 0, and an empty list in JSON', async () => {
    const text = await runCli(['runs', '--database-url', db.url]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/no repair has been applied on this database/);
    expect(await runs()).toEqual([]);
  });

  it('lists a completed repair and its undo, newest first, with rules, counts and undone', async () => {
    const applied = await repair(MERGE, '--apply', '--format', 'json');
    expect(applied.code).toBe(0);
    const runId = (JSON.parse(applied.stdout) as { runId: string }).runId;
    let list = await runs();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      runId,
      command: 'repair',
      status: 'completed',
      applied: true,
      undone: false,
      undoOf: null,
      rules: ['public.users(email)'],
      counts: { groups: 5, rowsDeleted: 15 },
      error: null,
    });
    expect(list[0]!.started).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(list[0]!.finished).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const undo = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
    expect(undo.code).toBe(0);
    list = await runs();
    expect(list.map((r) => [r.command, r.status, r.undone, r.undoOf])).toEqual([
      ['undo', 'completed', false, runId],
      ['repair', 'completed', true, null],
    ]);
    const text = await runCli(['runs', '--database-url', db.url]);
    expect(text.stdout).toMatch(/rowdoctor runs · [^\n]* · 2 runs \(2 completed\)/);
    expect(text.stdout).toContain(runId);
  });

  it('a run that fails is recorded as failed, with the error', async () => {
    await db.exec(`
      -- not a refusal of one group (class 23 or P0, skipped alone) but an error that ends the run
      create function refuse() returns trigger language plpgsql as $$
        begin raise exception 'token rows are kept' using errcode = 'data_exception'; end $$;
      create trigger keep before delete on token for each row execute function refuse();`);
    const res = await repair(ORPHANS, '--apply');
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/token rows are kept/);
    const [run] = await runs();
    expect(run).toMatchObject({ status: 'failed' });
    expect(run!.error).toMatch(/token rows are kept/);
    expect(run!.finished).not.toBeNull();
  });

  it('a run whose session is killed mid-run is recognised as dead: listed, then recorded, as interrupted', async () => {
    // Writes to token wait (a held row would only be set aside): the repair waits to delete, mid-run.
    const release = await holdLock(db, 'lock table token in share mode');
    const killed = repair(ORPHANS, '--apply', '--lock-timeout', '60s');
    const pid = await waitingRepairPid(db);
    await db.query('select pg_terminate_backend($1)', [pid]);
    const res = await killed;
    await release();
    await untilBackendGone(db, pid);
    await untilNoRowdoctorSessions(db);
    expect(res.code).toBe(2);
    expect(res.stderr).not.toMatch(/\n\s+at /); // one paragraph, no stack trace
    const [listed] = await runs();
    expect(listed).toMatchObject({ status: 'interrupted' });
    expect(listed!.error).toMatch(/ended before it finished/);
    // the next repair records it so for good
    expect((await repair(MERGE, '--apply')).code).toBe(0);
    const recorded = await db.query<{ status: string }>('select status from rowdoctor_backup.runs where run_id = $1', [
      listed!.runId,
    ]);
    expect(recorded).toEqual([{ status: 'interrupted' }]);
  });

  it('undo of a run that changed nothing says so', async () => {
    const res = await repair(ORPHANS.replace('delete', 'delete\n    where: "false"'), '--apply', '--format', 'json');
    const runId = (JSON.parse(res.stdout) as { runId: string }).runId;
    const undo = await runCli(['undo', runId, '--database-url', db.url, '--apply']);
    expect(undo.code).toBe(0);
    expect(undo.stdout).toMatch(/nothing to undo: the run changed no row/);
    expect(undo.stdout).not.toMatch(/APPLIED/);
  });
});
