import { sql } from 'kysely';
import { useRowTextSettings, type RowTextSettings } from './row-text.js';
import type { Catalog, Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { RowdoctorError, describePgError, isPgError } from '../errors.js';
import { tableRef, type Sql } from '../sql/build.js';
import { AFTER, BACKUP_SCHEMA, BATCH } from './backup.js';
import { batchTransaction, newRunId, nextBatchSize, takeRepairLock, type BatchTransactionOptions } from './run.js';
import { markDeadRuns } from './run-status.js';
import { waitForReplicas } from './replica-lag.js';
import { refuseRowSecurity } from '../catalog/row-security.js';
import {
  checkViolations,
  deleteConflicts,
  inSlice,
  restoreFreeRows,
  revertUnchangedRows,
  uniqueCollisions,
  updateConflicts,
  type ConflictSample,
  type Slice,
  type UndoTarget,
} from './undo-conflicts.js';
import { noKeyConflicts, revertNoKeyRows } from './undo-nokey.js';
import type { RecordedReference } from './references.js';
import { linkParents } from './undo-parents.js';
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
  /**
   * The repair's batches: how many, how many an earlier, interrupted undo took back already, and
   * whether its backups (from a version that did not record batches) are undone in one transaction.
   */
  batches: { batches: number; undoneBefore: number; oneTransaction: boolean };
  /** Ctrl-C stopped it between batches: what it took back is recorded; running it again finishes. */
  interrupted: boolean;
}

interface RunRow {
  run_id: string;
  command: string;
  status: string;
  undo_of: string | null;
  /** references: what the run re-pointed through (runs of earlier versions: none recorded). */
  options: { rowText?: RowTextSettings; references?: RecordedReference[] } | null;
}
interface BackupInfo extends UndoTarget {
  restore: number;
  revert: number;
  lastDelete: number;
}

export interface UndoOptions extends BatchTransactionOptions {
  apply: boolean;
  sample: number;
  /** At most this many backed-up rows per transaction (a repair batch is never split). */
  batchSize: number;
  /** Target time of one transaction: the batch size adapts between batches (0 or absent: fixed). */
  maxTransactionMs?: number;
  /** Pause between batches while a streaming replica's replay lag exceeds this (0: never). */
  maxReplicaLagMs?: number;
  /** Set by Ctrl-C: the current batch finishes (or rolls back), no new batch starts. */
  interrupted?: () => boolean;
}

/** One batch transaction of the repair, as its backups record it. */
interface RepairBatch {
  id: string;
  rows: number;
  last: number;
}

/** A connection lost mid-run: terminated, the server restarted, the network dropped. */
function connectionLost(e: unknown): boolean {
  if (isPgError(e)) return /^(08|57P0[1-3])/.test(e.code ?? '');
  return (
    e instanceof Error && /Connection terminated|ECONNRESET|EPIPE|connection (was )?(closed|ended)/i.test(e.message)
  );
}

/**
 * Restore what a repair run changed, taking its batches back one by one, last first, each in its
 * own short transaction: deleted rows go back first, tables in reverse order of their last deletion
 * (parents before the children that point at them); then updated rows get back the values of the
 * columns the run changed, as they were before the batch's first change. Every commit leaves the
 * data as one of the repair's own commits left it, so keys hold between batches. Runs backed up by
 * versions that did not record their batches are undone in one transaction, as then. Everything
 * that would refuse the undo is decided before the first batch commits; an undo that is
 * interrupted or killed records the batches it took back, and running it again finishes the job.
 */
export async function undoRun(session: Db, catalog: Catalog, runId: string, options: UndoOptions): Promise<UndoResult> {
  const exists = await sql<{ ok: boolean }>`select to_regclass(${`${BACKUP_SCHEMA}.runs`}) is not null as ok`.execute(
    session,
  );
  if (!exists.rows[0]?.ok)
    throw new RowdoctorError(`No repair has been applied on this database (schema ${BACKUP_SCHEMA} does not exist).`);
  const found = await sql<RunRow>`
    select run_id, command, status, undo_of, options
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
  // Rows print as text as they did when the repair took their after-images.
  await useRowTextSettings(session, run.options?.rowText);
  // Batches an interrupted undo of this run took back already: what is left is the rest.
  const slice: Slice = { runId, except: await undoneBatches(session, runId) };
  const { infos, batches, legacy } = await backupsOf(session, catalog, slice, run.options?.references);
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
  const progressOf = {
    batches: batches.length + slice.except!.length,
    undoneBefore: slice.except!.length,
    oneTransaction: legacy,
  };
  const base = {
    runId,
    undoRunId,
    applied: false,
    refused: null,
    conflictSamples: [],
    inexact: [],
    warnings,
    batches: progressOf,
    interrupted: false,
  };
  if (!infos.length) return { ...base, tables: [], nothingToUndo: true };

  // What can be restored, and what the application changed since (left alone, reported).
  const tables: UndoTable[] = [];
  const conflictSamples: ConflictSample[] = [];
  for (const info of infos) {
    const deleted = await deleteConflicts(session, info, slice, options.sample);
    const updated = info.table.primaryKey
      ? await updateConflicts(session, info, slice, options.sample)
      : await noKeyConflicts(session, info, slice, options.sample);
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
    infos.map((i) => ({ ...i, restores: i.restore > 0 })),
    replica,
    slice,
  );
  const planned = { ...base, tables, conflictSamples: conflictSamples.slice(0, options.sample), inexact };
  const collisions: string[] = [];
  const broken: string[] = [];
  for (const info of infos) {
    collisions.push(...(await uniqueCollisions(session, info, slice)));
    broken.push(...(await checkViolations(session, info, slice)));
  }
  if (collisions.length || broken.length)
    return {
      ...planned,
      refused: `${[
        collisions.length ? `restoring would violate a unique key: ${collisions.join('; ')}` : '',
        broken.length ? `restoring would break a constraint: ${broken.join('; ')}` : '',
      ]
        .filter(Boolean)
        .join('; ')}. Nothing was changed.`,
      nothingToUndo: false,
    };
  if (!options.apply) return { ...planned, nothingToUndo: false };
  if (inexact.length)
    throw new RowdoctorError(
      `Undo of ${runId} cannot restore every row bit for bit: ` +
        `${inexact.map((i) => `${i.table}: ${i.reason}`).join('; ')}. Nothing was changed.`,
      { hint: [...new Set(inexact.map((i) => i.hint))].join(' ') },
    );

  await takeRepairLock(session);
  await markDeadRuns(session, undoRunId);
  await prepareBatches(session, infos);
  if (legacy)
    options.progress.note(
      `undo ${runId}: its backups come from a rowdoctor version that did not record its batches; ` +
        'undoing it in one transaction',
    );
  const steps = legacy ? [null] : [...batches].sort((a, b) => b.last - a.last);
  const target = options.maxTransactionMs ?? 0;
  const started = Date.now();
  let size = target > 0 ? Math.min(options.batchSize, FIRST_BATCH_ROWS) : options.batchSize;
  let committed = 0;
  let rowsDone = 0;
  const totalRows = batches.reduce((n, b) => n + b.rows, 0);
  const parentsFirst = [...infos].sort((a, b) => b.lastDelete - a.lastDelete);
  // What the committed batches did restore and revert, per table. A row the application changed
  // between two batches is left alone (its after-image no longer matches): it counts as a conflict.
  const done = new Map(infos.map((i) => [i.table.id, { restore: 0, revert: 0 }]));
  // Tables with after-images (runs of earlier versions recorded none for tables without a primary key).
  const counted = (info: BackupInfo) => info.afterImages;
  const settled = (batch = new Map<string, { restore: number; revert: number }>()): UndoTable[] =>
    tables.map((t) => {
      const info = infos.find((i) => i.table.id === t.table)!;
      const restore = done.get(t.table)!.restore + (batch.get(t.table)?.restore ?? 0);
      const revert = counted(info) ? done.get(t.table)!.revert + (batch.get(t.table)?.revert ?? 0) : t.revert;
      return { ...t, restore, revert, conflicts: t.conflicts + (t.restore - restore) + (t.revert - revert) };
    });
  let interrupted = false;
  try {
    for (let i = 0; i < steps.length;) {
      if (options.interrupted?.()) {
        interrupted = true;
        break;
      }
      // As many of the repair's batches, last first, as fit in the batch size (at least one).
      const take: RepairBatch[] = [];
      let rows = 0;
      for (; i < steps.length; i++) {
        const b = steps[i];
        if (!b) {
          i++;
          break;
        }
        if (take.length && rows + b.rows > size) break;
        take.push(b);
        rows += b.rows;
      }
      const last = i >= steps.length;
      await waitForReplicas(session, options.maxReplicaLagMs ?? 0, (line) => options.progress.note(line));
      const elapsed = Date.now() - started;
      const left = rowsDone ? ` · ~${seconds((elapsed / rowsDone) * (totalRows - rowsDone))} left` : '';
      // The repair's batches are numbered as undo takes them: 1 is the repair's last.
      const [a, z] = [committed + 1 + progressOf.undoneBefore, committed + take.length + progressOf.undoneBefore];
      const what = legacy
        ? `undo ${runId}`
        : `undo ${runId}: repair ${a === z ? `batch ${a}` : `batches ${a}–${z}`} of ${progressOf.batches}, last first`;
      const step = options.progress.start(
        `${what} · ${rowsDone.toLocaleString('en-US')} rows taken back · ` +
          `batch of ${rows.toLocaleString('en-US')} rows · ${seconds(elapsed)}${left}`,
      );
      const these: Slice = legacy ? { runId } : { runId, only: take.map((b) => b.id) };
      const attempt = await batchTransaction(session, options, what, async (tx) => {
        const batch = new Map(infos.map((i) => [i.table.id, { restore: 0, revert: 0 }]));
        if (replica) await useReplicaRole(tx);
        for (const info of parentsFirst) batch.get(info.table.id)!.restore += await restoreFreeRows(tx, info, these);
        for (const info of infos) {
          const revert = info.table.primaryKey ? revertUnchangedRows : revertNoKeyRows;
          if (counted(info)) batch.get(info.table.id)!.revert += await revert(tx, info, these);
          else await revertUpdated(tx, info, these);
        }
        if (committed === 0)
          await sql`
            insert into ${sql.id(BACKUP_SCHEMA, 'runs')} (run_id, command, status, options, undo_of)
            values (${undoRunId}, 'undo', 'running', '{}'::jsonb, ${runId})`.execute(tx);
        if (these.only)
          await sql`
            insert into ${sql.id(BACKUP_SCHEMA, 'undone')} (undo_of, batch, undo_run)
            select ${runId}, unnest(${these.only}::bigint[]), ${undoRunId}`.execute(tx);
        // The last batch ends the run in its own commit: a kill after it leaves nothing to finish.
        if (last) await finishUndo(tx, undoRunId, 'completed', settled(batch));
        return batch;
      });
      step.done();
      if ('error' in attempt)
        throw new RowdoctorError(
          `Undo of ${runId} stopped: ${attempt.error}. ${takenBack(committed, progressOf)}` +
            `Run \`rowdoctor undo ${runId} --apply\` again to finish.`,
          { hint: 'Rows held by the application for long keep undo waiting; it always gives way to them.' },
        );
      for (const [table, n] of attempt.value) {
        done.get(table)!.restore += n.restore;
        done.get(table)!.revert += n.revert;
      }
      committed += take.length || 1;
      rowsDone += rows;
      if (target > 0) size = nextBatchSize(Math.max(rows, 1), attempt.ms, target, options.batchSize);
    }
  } catch (e) {
    const status = connectionLost(e) ? 'interrupted' : 'failed';
    const message = e instanceof Error ? e.message : String(e);
    if (committed) await finishUndo(session, undoRunId, status, tables, message).catch(() => undefined);
    if (isPgError(e) && e.code === '23505' && committed === 0) {
      return {
        ...planned,
        refused: `restoring would violate a unique key: ${describePgError(e)}. Nothing was changed.`,
        nothingToUndo: false,
      };
    }
    if (connectionLost(e))
      throw new RowdoctorError(
        `Undo of ${runId} lost its connection to the server (${message}). ${takenBack(committed, progressOf)}` +
          `Nothing is half done: each batch commits whole. Run \`rowdoctor undo ${runId} --apply\` again to finish.`,
        { cause: e },
      );
    if (isPgError(e))
      throw new RowdoctorError(
        `Undo of ${runId} failed: ${describePgError(e)}. ${takenBack(committed, progressOf)}`.trim(),
        { cause: e },
      );
    throw e;
  }
  if (interrupted) {
    if (committed) await finishUndo(session, undoRunId, 'interrupted', tables);
    return { ...planned, applied: committed > 0, interrupted: true, nothingToUndo: false };
  }
  return { ...planned, tables: settled(), applied: true, nothingToUndo: false };
}

/** The first transaction of a time-sized undo: small, so that a slow table costs one short transaction. */
const FIRST_BATCH_ROWS = 100;

function takenBack(committed: number, p: { batches: number; undoneBefore: number }): string {
  if (!committed && !p.undoneBefore) return 'Nothing was changed. ';
  return (
    `${committed + p.undoneBefore} of the repair's ${p.batches} batches are taken back and recorded; ` +
    'the rest is as the repair left it. '
  );
}

async function finishUndo(
  db: Db | Tx,
  undoRunId: string,
  status: 'completed' | 'interrupted' | 'failed',
  tables: UndoTable[],
  error: string | null = null,
): Promise<void> {
  await sql`
    update ${sql.id(BACKUP_SCHEMA, 'runs')}
       set status = ${status}, finished_at = now(), counts = ${JSON.stringify(tables)}, error = ${error}
     where run_id = ${undoRunId}`.execute(db);
}

/** The repair batches of `runId` that earlier (interrupted) undos took back. */
async function undoneBatches(session: Db, runId: string): Promise<string[]> {
  const has = await sql<{ ok: boolean }>`select to_regclass(${`${BACKUP_SCHEMA}.undone`}) is not null as ok`.execute(
    session,
  );
  if (!has.rows[0]?.ok) return [];
  const { rows } = await sql<{ batch: string }>`
    select batch::text as batch from ${sql.id(BACKUP_SCHEMA, 'undone')} where undo_of = ${runId}`.execute(session);
  return rows.map((r) => r.batch);
}

/**
 * Before the first batch: the table that records which repair batches are taken back, and an
 * index per backup table that finds one batch's rows (backup tables are rowdoctor's own: building
 * it locks no user table).
 */
async function prepareBatches(session: Db, infos: BackupInfo[]): Promise<void> {
  // Looked up first: CREATE … IF NOT EXISTS still needs CREATE on the schema, which a role that only
  // undoes may lack once the table is there.
  const has = await sql<{ ok: boolean }>`select to_regclass(${`${BACKUP_SCHEMA}.undone`}) is not null as ok`.execute(
    session,
  );
  if (!has.rows[0]?.ok)
    await sql`
      create table if not exists ${sql.id(BACKUP_SCHEMA, 'undone')} (
        undo_of text not null,
        batch bigint not null,
        undo_run text not null,
        primary key (undo_of, batch)
      )`.execute(session);
  for (const info of infos.filter((i) => i.batched)) {
    // Only the backup table's owner may index it; without the index undo is slower, not wrong.
    const { rows } = await sql<{ build: boolean }>`
      select pg_has_role(c.relowner, 'USAGE')
             and to_regclass(${`${BACKUP_SCHEMA}."${info.table.oid}_rd_batch"`}) is null as build
        from pg_class c
       where c.oid = ${`${BACKUP_SCHEMA}."${info.backup.replace(/"/g, '""')}"`}::regclass`.execute(session);
    if (rows[0]?.build)
      await sql`
        create index if not exists ${sql.id(`${info.table.oid}_rd_batch`)}
            on ${sql.id(BACKUP_SCHEMA, info.backup)} (_rd_run, ${sql.id(BATCH)})`.execute(session);
  }
}

function seconds(ms: number): string {
  return ms < 60_000
    ? `${(ms / 1000).toFixed(1)}s`
    : `${Math.floor(ms / 60_000)}min ${Math.round((ms % 60_000) / 1000)}s`;
}

async function backupsOf(
  session: Db,
  catalog: Catalog,
  slice: Slice,
  references: RecordedReference[] | undefined,
): Promise<{ infos: BackupInfo[]; batches: RepairBatch[]; legacy: boolean }> {
  const { runId } = slice;
  const list = await sql<{ backup_table: string; table_schema: string; table_name: string }>`
    select backup_table, table_schema, table_name from ${sql.id(BACKUP_SCHEMA, 'tables')} order by 1`.execute(session);
  const out: BackupInfo[] = [];
  const batches = new Map<string, RepairBatch>();
  let legacy = false;
  for (const b of list.rows) {
    const bt = sql.id(BACKUP_SCHEMA, b.backup_table);
    const columns = await sql<{ name: string }>`
      select attname as name from pg_attribute
       where attrelid = ${`${BACKUP_SCHEMA}."${b.backup_table.replace(/"/g, '""')}"`}::regclass
         and attnum > 0 and not attisdropped`.execute(session);
    const has = new Set(columns.rows.map((r) => r.name));
    const table = catalog.tables.find((t) => t.schema === b.table_schema && t.name === b.table_name);
    const target = { backup: b.backup_table, batched: has.has(BATCH) };
    const scope = inSlice(target, slice);
    if (table) await refuseLostColumns(session, table, b.backup_table, has, scope, slice.runId);
    const stats = await sql<{ restore: string; revert: string; last_delete: string | null }>`
      select count(*) filter (where _rd_op = 'delete') as restore,
             (select count(*)
                from (select distinct ${rowIdentity(catalog, b)}
                        from ${bt}
                       where ${scope} and _rd_op = 'update') u) as revert,
             max(_rd_seq) filter (where _rd_op = 'delete') as last_delete
        from ${bt} where ${scope}`.execute(session);
    const s = stats.rows[0]!;
    if (Number(s.restore) + Number(s.revert) === 0) continue;
    const afterImages =
      has.has(AFTER) &&
      Number(
        (
          await sql<{ n: string }>`
            select count(*) as n from ${bt}
             where ${scope} and _rd_op = 'update' and ${sql.id(AFTER)} is null`.execute(session)
        ).rows[0]?.n ?? 0,
      ) === 0;
    if (!table)
      throw new RowdoctorError(
        `Run ${runId} changed ${b.table_schema}.${b.table_name}, which no longer exists; it cannot be restored.`,
      );
    if (target.batched) {
      const { rows } = await sql<{ batch: string | null; n: string; last: string }>`
        select ${sql.id(BATCH)}::text as batch, count(*) as n, max(_rd_seq) as last
          from ${bt}
         where ${scope}
         group by 1`.execute(session);
      for (const r of rows) {
        if (r.batch === null) {
          legacy = true;
          continue;
        }
        const seen = batches.get(r.batch) ?? { id: r.batch, rows: 0, last: 0 };
        batches.set(r.batch, { id: r.batch, rows: seen.rows + Number(r.n), last: Math.max(seen.last, Number(r.last)) });
      }
    } else legacy = true;
    out.push({
      ...target,
      table,
      columns: table.columns.filter((c) => has.has(c.name)),
      parents: [],
      restore: Number(s.restore),
      revert: Number(s.revert),
      lastDelete: Number(s.last_delete ?? 0),
      afterImages,
    });
  }
  linkParents(catalog, out, references);
  return { infos: out, batches: legacy ? [] : [...batches.values()], legacy };
}

/**
 * A column of the backup that the table no longer has (dropped or renamed since the repair), or one
 * the table has that the backup lost (a DROP TYPE … CASCADE drops backup columns too): the run's
 * rows cannot come back as they were. Undo refuses before it plans anything, naming the columns.
 */
async function refuseLostColumns(
  session: Db,
  table: Table,
  backup: string,
  backupColumns: Set<string>,
  scope: Sql,
  runId: string,
): Promise<void> {
  const live = new Set(table.columns.map((c) => c.name));
  const gone = [...backupColumns].filter((c) => !c.startsWith('_rd_') && !live.has(c));
  const bt = sql.id(BACKUP_SCHEMA, backup);
  const where = `${BACKUP_SCHEMA}."${backup.replace(/"/g, '""')}"`;
  const hint =
    `The rows as they were before the run are in ${where} (_rd_run = '${runId}'): ` +
    'rename the column back and run undo again, or restore them by hand.';
  if (gone.length) {
    const held = sql.join(
      gone.map((c) => sql`${sql.id(c)} is not null`),
      sql` or `,
    );
    const { rows } = await sql<{ n: string }>`select count(*) as n from ${bt} where ${scope} and (${held})`.execute(
      session,
    );
    const n = Number(rows[0]?.n ?? 0);
    if (n)
      throw new RowdoctorError(
        `Undo of ${runId} cannot restore ${table.id}: column(s) ${gone.join(', ')} of its backup are no longer in ` +
          `the table (dropped or renamed since the repair), and ${n.toLocaleString('en-US')} backed-up row(s) ` +
          'hold values there. Nothing was changed.',
        { hint },
      );
  }
  const { rows } = await sql<{ n: string }>`
    select count(*) as n from pg_attribute
     where attrelid = ${where}::regclass and attnum > 0 and attisdropped`.execute(session);
  const missing = table.columns.filter((c) => !backupColumns.has(c.name)).map((c) => c.name);
  if (Number(rows[0]?.n ?? 0) > 0 && missing.length)
    throw new RowdoctorError(
      `Undo of ${runId} cannot restore ${table.id}: its backup lost column(s) since the repair (dropped with ` +
        `something they depended on, such as DROP TYPE … CASCADE), so ${missing.join(', ')} cannot come back. ` +
        'Nothing was changed.',
      { hint },
    );
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
async function revertUpdated(tx: Tx, info: BackupInfo, slice: Slice): Promise<void> {
  if (!info.revert) return;
  const sets = await sql<{
    cols: string[];
  }>`select distinct _rd_columns as cols from ${sql.id(BACKUP_SCHEMA, info.backup)}
     where ${inSlice(info, slice)} and _rd_op = 'update'`.execute(tx);
  const id = info.table.primaryKey ? sql.join(info.table.primaryKey.map((c) => sql.id(c))) : sql`_rd_seq`;
  for (const { cols } of sets.rows) {
    await sql`update ${tableRef(info.table)} t set ${sql.join(cols.map((c) => sql`${sql.id(c)} = b.${sql.id(c)}`))}
      from (select distinct on (${id}) * from ${sql.id(BACKUP_SCHEMA, info.backup)}
             where ${inSlice(info, slice)} and _rd_op = 'update' and _rd_columns = ${cols}::text[]
             order by ${id}, _rd_seq) b
     where ${sameRow(info.table, cols, 't', 'b')}`.execute(tx);
  }
}
