import { sql } from 'kysely';
import type { Catalog, Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { RowdoctorError, describePgError, isPgError } from '../errors.js';
import { tableRef } from '../sql/build.js';
import { AFTER, BACKUP_SCHEMA } from './backup.js';
import { newRunId, takeRepairLock } from './run.js';
import { markDeadRuns } from './run-status.js';
import { refuseRowSecurity } from '../catalog/row-security.js';
import {
  deleteConflicts,
  restoreFreeRows,
  revertUnchangedRows,
  updateConflicts,
  type ConflictSample,
  type UndoTarget,
} from './undo-conflicts.js';
import { inexactTables, mayReplicate, triggerSideEffects, useReplicaRole, type Inexact } from './undo-exact.js';
import type { Warning } from '../catalog/row-security.js';

export interface UndoTable {
  table: string;
  /** Deleted rows to put back (their key is still free). */
  restore: number;
  /** Updated rows that go back to what they were before the run (they still hold what it left). */
  revert: number;
  /** Rows the application changed, deleted or re-used the key of since: left alone. */
  conflicts: number;
}

export interface UndoResult {
  runId: string;
  undoRunId: string;
  applied: boolean;
  tables: UndoTable[];
  conflictSamples: ConflictSample[];
  /** Tables undo cannot restore bit for bit as this role; --apply then refuses. */
  inexact: Inexact[];
  /** What undo restores exactly but cannot take back (side effects of AFTER triggers). */
  warnings: Warning[];
  refused: string | null;
  /** The run changed no row (everything skipped, or nothing to do): there is nothing to undo. */
  nothingToUndo: boolean;
}

interface RunRow {
  run_id: string;
  command: string;
  status: string;
  undo_of: string | null;
}
interface BackupInfo extends UndoTarget {
  restore: number;
  revert: number;
  lastDelete: number;
}

/**
 * Restore what a repair run changed. Deleted rows go back first, tables in reverse order of their
 * last deletion (parents before the children that point at them); then updated rows get back the
 * values of the columns the run changed, as they were before its first change. One transaction:
 * all of it, or nothing.
 */
export async function undoRun(
  session: Db,
  catalog: Catalog,
  runId: string,
  options: { apply: boolean; lockTimeoutMs: number; sample: number },
): Promise<UndoResult> {
  const exists = await sql<{ ok: boolean }>`select to_regclass(${`${BACKUP_SCHEMA}.runs`}) is not null as ok`.execute(
    session,
  );
  if (!exists.rows[0]?.ok)
    throw new RowdoctorError(`No repair has been applied on this database (schema ${BACKUP_SCHEMA} does not exist).`);
  const found = await sql<RunRow>`
    select run_id, command, status, undo_of
      from ${sql.id(BACKUP_SCHEMA, 'runs')}
     where run_id = ${runId}`.execute(session);
  const run = found.rows[0];
  if (!run) {
    const recent = await sql<RunRow>`
      select run_id, command, status
        from ${sql.id(BACKUP_SCHEMA, 'runs')}
       order by started_at desc
       limit 5`.execute(session);
    throw new RowdoctorError(`There is no run "${runId}" in ${BACKUP_SCHEMA}.runs.`, {
      hint: recent.rows.length
        ? `Recent runs: ${recent.rows.map((r) => `${r.run_id} (${r.command}, ${r.status})`).join(', ')}.`
        : 'No runs are recorded.',
    });
  }
  if (run.command === 'undo')
    throw new RowdoctorError(
      `Run ${runId} is itself an undo (of ${run.undo_of}); to change the data again, run repair.`,
    );
  const by = await sql<{ run_id: string }>`
    select run_id
      from ${sql.id(BACKUP_SCHEMA, 'runs')}
     where undo_of = ${runId} and command = 'undo' and status = 'completed'`.execute(session);
  // 'undone' is how runs of earlier versions were marked
  if (by.rows.length || run.status === 'undone') {
    const byRun = by.rows[0] ? ` by run ${by.rows[0].run_id}` : '';
    throw new RowdoctorError(`Run ${runId} was already undone${byRun}; undoing it twice would duplicate rows.`);
  }
  const infos = await backupsOf(session, catalog, runId);
  await refuseRowSecurity(
    session,
    infos.map((i) => i.table),
    'undo',
  );
  const undoRunId = newRunId();
  const warnings = await triggerSideEffects(
    session,
    infos.map((i) => i.table),
  );
  const base = { runId, undoRunId, applied: false, refused: null, conflictSamples: [], inexact: [], warnings };
  if (!infos.length) return { ...base, tables: [], nothingToUndo: true };

  // What can be restored, and what the application changed since (left alone, reported).
  const tables: UndoTable[] = [];
  const conflictSamples: ConflictSample[] = [];
  for (const info of infos) {
    const deleted = await deleteConflicts(session, info, runId, options.sample);
    const updated = await updateConflicts(session, info, runId, options.sample);
    conflictSamples.push(...deleted.samples, ...updated.samples);
    tables.push({
      table: info.table.id,
      restore: info.restore - deleted.count,
      revert: info.revert - updated.count,
      conflicts: deleted.count + updated.count,
    });
  }
  const replica = await mayReplicate(session, catalog.serverVersion);
  const inexact = await inexactTables(
    session,
    infos.map((i) => ({ table: i.table, restores: i.restore > 0, backup: i.backup })),
    replica,
    runId,
  );
  const planned = { ...base, tables, conflictSamples: conflictSamples.slice(0, options.sample), inexact };
  if (!options.apply) return { ...planned, nothingToUndo: false };
  if (inexact.length)
    throw new RowdoctorError(
      `Undo of ${runId} cannot restore every row bit for bit: ` +
        `${inexact.map((i) => `${i.table}: ${i.reason}`).join('; ')}. Nothing was changed.`,
      { hint: [...new Set(inexact.map((i) => i.hint))].join(' ') },
    );

  await takeRepairLock(session);
  await markDeadRuns(session, undoRunId);
  try {
    await session.transaction().execute(async (tx) => {
      await sql`select set_config('lock_timeout', ${String(options.lockTimeoutMs)}, true)`.execute(tx);
      if (replica) await useReplicaRole(tx);
      // Parents before the children that point at them: tables in reverse order of their last deletion.
      for (const info of [...infos].sort((a, b) => b.lastDelete - a.lastDelete)) await restoreFreeRows(tx, info, runId);
      for (const info of infos) {
        if (info.table.primaryKey && info.afterImages) await revertUnchangedRows(tx, info, runId);
        else await revertUpdated(tx, info, runId);
      }
      await sql`
        insert into ${sql.id(BACKUP_SCHEMA, 'runs')} (run_id, command, status, options, undo_of, finished_at, counts)
        values (${undoRunId}, 'undo', 'completed', '{}'::jsonb, ${runId}, now(), ${JSON.stringify(tables)})`.execute(
        tx,
      );
    });
  } catch (e) {
    if (isPgError(e) && e.code === '23505') {
      return {
        ...planned,
        refused: `restoring would violate a unique key: ${describePgError(e)}. Nothing was changed.`,
        nothingToUndo: false,
      };
    }
    throw e;
  }
  return { ...planned, applied: true, nothingToUndo: false };
}

async function backupsOf(session: Db, catalog: Catalog, runId: string): Promise<BackupInfo[]> {
  const list = await sql<{ backup_table: string; table_schema: string; table_name: string }>`
    select backup_table, table_schema, table_name from ${sql.id(BACKUP_SCHEMA, 'tables')} order by 1`.execute(session);
  const out: BackupInfo[] = [];
  for (const b of list.rows) {
    const stats = await sql<{ restore: string; revert: string; last_delete: string | null }>`
      select count(*) filter (where _rd_op = 'delete') as restore,
             (select count(*)
                from (select distinct ${rowIdentity(catalog, b)}
                        from ${sql.id(BACKUP_SCHEMA, b.backup_table)}
                       where _rd_run = ${runId} and _rd_op = 'update') u) as revert,
             max(_rd_seq) filter (where _rd_op = 'delete') as last_delete
        from ${sql.id(BACKUP_SCHEMA, b.backup_table)} where _rd_run = ${runId}`.execute(session);
    const s = stats.rows[0]!;
    if (Number(s.restore) + Number(s.revert) === 0) continue;
    const bt = sql.id(BACKUP_SCHEMA, b.backup_table);
    const hasAfter = await sql<{ ok: boolean }>`
      select exists (
        select 1 from pg_attribute
         where attrelid = ${`${BACKUP_SCHEMA}."${b.backup_table.replace(/"/g, '""')}"`}::regclass
           and attname = ${AFTER} and not attisdropped
      ) as ok`.execute(session);
    const afterImages =
      hasAfter.rows[0]?.ok === true &&
      Number(
        (
          await sql<{ n: string }>`
            select count(*) as n from ${bt}
             where _rd_run = ${runId} and _rd_op = 'update' and ${sql.id(AFTER)} is null`.execute(session)
        ).rows[0]?.n ?? 0,
      ) === 0;
    const table = catalog.tables.find((t) => t.schema === b.table_schema && t.name === b.table_name);
    if (!table)
      throw new RowdoctorError(
        `Run ${runId} changed ${b.table_schema}.${b.table_name}, which no longer exists; it cannot be restored.`,
      );
    out.push({
      backup: b.backup_table,
      table,
      restore: Number(s.restore),
      revert: Number(s.revert),
      lastDelete: Number(s.last_delete ?? 0),
      afterImages,
    });
  }
  return out;
}

/** What tells backed-up rows apart: the primary key, or else the row itself (the backup's ctid). */
function rowIdentity(catalog: Catalog, b: { table_schema: string; table_name: string }) {
  const table = catalog.tables.find((t) => t.schema === b.table_schema && t.name === b.table_name);
  return table?.primaryKey ? sql.join(table.primaryKey.map((c) => sql.id(c))) : sql`ctid`;
}

function pkEquals(table: Table, a: string, b: string) {
  return sql.join(
    table.primaryKey!.map((c) => sql`${sql.id(a, c)} = ${sql.id(b, c)}`),
    sql` and `,
  );
}

/**
 * How a live row is matched to its backup when reverting an update: by primary key; in a table
 * without one, by every column the run did not change (rows equal in all of those are
 * interchangeable, so the table comes back as the same multiset of rows).
 */
function sameRow(table: Table, changed: string[], a: string, b: string) {
  if (table.primaryKey) return pkEquals(table, a, b);
  const others = table.columns.filter((c) => !changed.includes(c.name) && !c.generated);
  return sql.join(
    others.map((c) => sql`${sql.id(a, c.name)} is not distinct from ${sql.id(b, c.name)}`),
    sql` and `,
  );
}

/** Each updated row gets back its changed columns from its earliest backup in the run. */
async function revertUpdated(tx: Tx, info: BackupInfo, runId: string): Promise<void> {
  if (!info.revert) return;
  const sets = await sql<{
    cols: string[];
  }>`select distinct _rd_columns as cols from ${sql.id(BACKUP_SCHEMA, info.backup)}
     where _rd_run = ${runId} and _rd_op = 'update'`.execute(tx);
  const id = info.table.primaryKey ? sql.join(info.table.primaryKey.map((c) => sql.id(c))) : sql`_rd_seq`;
  for (const { cols } of sets.rows) {
    await sql`update ${tableRef(info.table)} t set ${sql.join(cols.map((c) => sql`${sql.id(c)} = b.${sql.id(c)}`))}
      from (select distinct on (${id}) * from ${sql.id(BACKUP_SCHEMA, info.backup)}
             where _rd_run = ${runId} and _rd_op = 'update' and _rd_columns = ${cols}::text[] order by ${id}, _rd_seq) b
     where ${sameRow(info.table, cols, 't', 'b')}`.execute(tx);
  }
}
