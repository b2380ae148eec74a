import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { BACKUP_SCHEMA } from './backup-tables.js';

/**
 * A run's row in rowdoctor_backup.runs says what became of it: `running` while its process holds the
 * repair lock, then `completed`, `partial` (groups skipped), `interrupted` (Ctrl-C, or found dead)
 * or `failed` (with the error). No run is left `running` once its process is gone.
 */
export type RunStatus = 'running' | 'completed' | 'partial' | 'interrupted' | 'failed' | 'undone';

const runs = sql.id(BACKUP_SCHEMA, 'runs');

/**
 * Called right after taking the repair lock: only one repair or undo holds it at a time, so any
 * run still marked `running` belongs to a process that died (killed, or its connection lost).
 */
export async function markDeadRuns(db: Db | Tx, by: string): Promise<void> {
  const error = `the run's process ended before it finished (killed, or its connection was lost); found by run ${by}`;
  await sql`
    update ${runs}
       set status = 'interrupted',
           error = ${error}
     where status = 'running'`.execute(db);
}

/** A running run's counts so far, written in each batch's own transaction. */
export async function recordCounts(tx: Tx, runId: string, counts: unknown): Promise<void> {
  await sql`update ${runs} set counts = ${JSON.stringify(counts)} where run_id = ${runId}`.execute(tx);
}

/** Record how a run ended; best effort when its session is the thing that failed. */
export async function finishRun(
  db: Db,
  runId: string,
  status: Exclude<RunStatus, 'running'>,
  counts: unknown,
  error: string | null = null,
): Promise<void> {
  await sql`
    update ${runs}
       set status = ${status},
           finished_at = now(),
           counts = ${JSON.stringify(counts)},
           error = ${error}
     where run_id = ${runId}`.execute(db);
}

/**
 * Record as `interrupted` a run whose own session was lost, on another connection (`db`: the pool).
 * Best effort and short: false when the server is not reachable again yet, or when the dead
 * session's batch still holds the run's row (a dropped network the server has not noticed) — the
 * run is then listed as interrupted once its repair lock is free, and recorded so by the next run.
 */
export async function finishLostRun(db: Db, runId: string, counts: unknown, why: string): Promise<boolean> {
  const error = `the run's process ended before it finished: its connection to the server was lost (${why})`;
  try {
    await db.transaction().execute(async (tx) => {
      await sql`select set_config('lock_timeout', '2000', true), set_config('statement_timeout', '5000', true)`.execute(
        tx,
      );
      await sql`
        update ${runs}
           set status = 'interrupted',
               finished_at = now(),
               counts = ${JSON.stringify(counts)},
               error = ${error}
         where run_id = ${runId} and status = 'running'`.execute(tx);
    });
    return true;
  } catch {
    return false;
  }
}
