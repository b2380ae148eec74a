import { sql } from 'kysely';
import type { Tx } from '../db.js';
import { BACKUP_SCHEMA } from './backup-tables.js';
import { REPAIR_LOCK_KEY } from './run-lock.js';

/** One entry of `rowdoctor runs` (contract §JSON `runs`). */
export interface RunEntry {
  runId: string;
  command: 'repair' | 'undo';
  started: string;
  finished: string | null;
  status: string;
  /** Repairs are recorded only when applied; a dry run leaves no trace. */
  applied: boolean;
  /** A completed undo restored this run. */
  undone: boolean;
  undoOf: string | null;
  rules: string[];
  counts: Record<string, number>;
  error: string | null;
  /** The md5 of the reviewed plan a repair applied (--plan), else null. */
  plan: string | null;
}

interface RunRow {
  run_id: string;
  command: 'repair' | 'undo';
  started: string;
  finished: string | null;
  status: string;
  options: { rules?: string[]; plan?: string } | null;
  counts: unknown;
  undo_of: string | null;
  error: string | null;
  undone: boolean;
  dead: boolean;
}

/**
 * Every run recorded on this database, newest first. Read-only (a standby can answer it). On a
 * primary, a run still marked `running` whose repair lock nobody holds is reported `interrupted`:
 * its process died, and the next repair will record it so.
 */
export async function listRuns(tx: Tx, limit: number): Promise<RunEntry[] | null> {
  const exists = await sql<{ ok: boolean }>`select to_regclass(${`${BACKUP_SCHEMA}.runs`}) is not null as ok`.execute(
    tx,
  );
  if (!exists.rows[0]?.ok) return null;
  const hasError = await sql<{ ok: boolean }>`
    select exists (
      select 1 from pg_attribute
       where attrelid = ${`${BACKUP_SCHEMA}.runs`}::regclass and attname = 'error' and not attisdropped
    ) as ok`.execute(tx);
  const errorColumn = hasError.rows[0]?.ok ? sql`r.error` : sql`null::text`;
  // pg_locks shows only this server's locks: on a standby a primary's run cannot be judged dead.
  const lockHeld = sql`
    exists (
      select 1
        from pg_locks l
       where l.locktype = 'advisory' and l.granted
         and l.objid = (${REPAIR_LOCK_KEY} & x'ffffffff'::bigint)::oid
    )`;
  const { rows } = await sql<RunRow>`
    select r.run_id,
           r.command,
           to_char(r.started_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as started,
           to_char(r.finished_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as finished,
           r.status,
           r.options,
           r.counts,
           r.undo_of,
           ${errorColumn} as error,
           r.status = 'undone' or exists (
             select 1
               from ${sql.id(BACKUP_SCHEMA, 'runs')} u
              where u.undo_of = r.run_id and u.command = 'undo' and u.status = 'completed'
           ) as undone,
           r.status = 'running' and not pg_is_in_recovery() and not ${lockHeld} as dead
      from ${sql.id(BACKUP_SCHEMA, 'runs')} r
     order by r.started_at desc, r.run_id desc
     limit ${limit}`.execute(tx);
  return rows.map((r) => ({
    runId: r.run_id,
    command: r.command,
    started: r.started,
    finished: r.finished,
    status: r.dead ? 'interrupted' : r.status === 'undone' ? 'completed' : r.status,
    applied: true,
    undone: r.undone,
    undoOf: r.undo_of,
    rules: r.options?.rules ?? [],
    counts: totalCounts(r.counts),
    error: r.dead ? "the run's process ended before it finished (killed, or its connection was lost)" : r.error,
    plan: r.options?.plan ?? null,
  }));
}

/** A run's per-rule (repair) or per-table (undo) counts, summed by name. */
function totalCounts(counts: unknown): Record<string, number> {
  const total: Record<string, number> = {};
  for (const entry of Array.isArray(counts) ? (counts as Record<string, unknown>[]) : []) {
    for (const [key, value] of Object.entries(entry))
      if (typeof value === 'number') total[key] = (total[key] ?? 0) + value;
  }
  return total;
}
