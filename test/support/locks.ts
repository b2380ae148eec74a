import pg from 'pg';
import type { TestDb } from './db.js';
import { until } from './poll.js';

/**
 * Lock rows (or a table) from another session with `select` (… FOR UPDATE, or LOCK TABLE); returns
 * what releases them: a rollback, or — given `commitWith` — those statements in the holding
 * transaction, then a commit.
 */
export async function holdLock(db: TestDb, select: string): Promise<(commitWith?: string) => Promise<void>> {
  const holder = new pg.Client(db.url);
  await holder.connect();
  await holder.query('begin');
  await holder.query(select);
  return async (commitWith?: string) => {
    if (commitWith) await holder.query(commitWith);
    await holder.query(commitWith ? 'commit' : 'rollback');
    await holder.end();
  };
}

/** Until a rowdoctor statement is waiting for a lock. */
export async function untilRepairWaits(db: TestDb): Promise<void> {
  await until('a rowdoctor statement waits for a lock', async () => (await db.query(WAITING)).length > 0);
}

const WAITING =
  "select pid from pg_stat_activity where application_name = 'rowdoctor' and datname = current_database() and wait_event_type = 'Lock'";

/** The backend pid of the rowdoctor statement waiting for a lock. */
export async function waitingRepairPid(db: TestDb): Promise<number> {
  const [row] = await until('a rowdoctor statement waits for a lock', () =>
    db.query<{ pid: number }>(WAITING).then((rows) => (rows.length ? rows : null)),
  );
  return row!.pid;
}

/**
 * Until a terminated backend has exited. Its client hears of the termination (the FATAL message)
 * before the backend has let go of its locks, so asserting on them right away races.
 */
export async function untilBackendGone(db: TestDb, pid: number): Promise<void> {
  await until(
    `backend ${pid} has exited`,
    async () => !(await db.query('select 1 from pg_stat_activity where pid = $1', [pid])).length,
  );
}

/**
 * Until no rowdoctor session is left in the database. A CLI that exits closes its connections, but
 * each backend exits (and lets go of its advisory lock) a moment later.
 */
export async function untilNoRowdoctorSessions(db: TestDb): Promise<void> {
  await until(
    'every rowdoctor session has ended',
    async () =>
      !(
        await db.query(
          "select 1 from pg_stat_activity where application_name = 'rowdoctor' and datname = current_database()",
        )
      ).length,
  );
}
