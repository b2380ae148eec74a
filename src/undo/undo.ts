import { sql } from 'kysely';
import { refuseRowSecurity } from '../catalog/row-security.js';
import type { Catalog } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { RowdoctorError, connectionLost, describePgError, isPgError } from '../errors.js';
import { BACKUP_SCHEMA } from '../journal/backup-tables.js';
import { useRowTextSettings } from '../journal/row-text.js';
import { newRunId, takeRepairLock } from '../journal/run-lock.js';
import { markDeadRuns } from '../journal/run-status.js';
import { batchTransaction, nextBatchSize, seconds } from '../repair/batch-transaction.js';
import { waitForReplicas } from '../repair/replica-lag.js';
import { backupsOf } from './backups.js';
import {
  checkViolations,
  deleteConflicts,
  restoreFreeRows,
  revertUnchangedRows,
  uniqueCollisions,
  updateConflicts,
  inSlice,
  type ConflictSample,
  type Slice,
} from './conflicts.js';
import { inexactTables, mayReplicate, triggerSideEffects, useReplicaRole } from './exact.js';
import { noKeyConflicts, revertNoKeyRows } from './no-key.js';
import { rekeyedConflicts, revertRekeyedRows } from './rekeyed.js';
import { revertUpdated } from './revert-updates.js';
import type { BackupInfo, RepairBatch, RunRow, UndoOptions, UndoResult, UndoTable } from './types.js';
import { indexBackups, prepareBatches, undoneBatches } from './undone-batches.js';

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

  await indexBackups(session, infos);
  // What can be restored, and what the application changed since (left alone, reported).
  const tables: UndoTable[] = [];
  const conflictSamples: ConflictSample[] = [];
  for (const info of infos) {
    const deleted = await deleteConflicts(session, info, slice, options.sample);
    const updated = info.table.primaryKey
      ? await (info.rekeyed ? rekeyedConflicts : updateConflicts)(session, info, slice, options.sample)
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
      // The repair's batches go back one by one, last first, even inside one transaction: a row two
      // of them changed (two rules re-keying a join table and its children) passes back through the
      // state between them, where what it names is as the earlier batch left it.
      const slices: Slice[] = legacy ? [{ runId }] : take.map((b) => ({ runId, only: [b.id], except: slice.except! }));
      const attempt = await batchTransaction(session, options, what, async (tx) => {
        const batch = new Map(infos.map((i) => [i.table.id, { restore: 0, revert: 0 }]));
        if (replica) await useReplicaRole(tx);
        for (const these of slices) {
          const touched = legacy ? infos : infos.filter((i) => i.inBatches.has(these.only![0]!));
          for (const info of await parentsFirst(tx, touched, these))
            batch.get(info.table.id)!.restore += await restoreFreeRows(tx, info, these);
          // Rows whose key the run changed go back to it first: rows naming them find them there.
          for (const info of [...touched.filter((i) => i.rekeyed), ...touched.filter((i) => !i.rekeyed)]) {
            const revert = !info.table.primaryKey
              ? revertNoKeyRows
              : info.rekeyed
                ? revertRekeyedRows
                : revertUnchangedRows;
            if (counted(info)) batch.get(info.table.id)!.revert += await revert(tx, info, these);
            else await revertUpdated(tx, info, these);
          }
        }
        if (committed === 0)
          await sql`
            insert into ${sql.id(BACKUP_SCHEMA, 'runs')} (run_id, command, status, options, undo_of)
            values (${undoRunId}, 'undo', 'running', '{}'::jsonb, ${runId})`.execute(tx);
        if (!legacy)
          await sql`
            insert into ${sql.id(BACKUP_SCHEMA, 'undone')} (undo_of, batch, undo_run)
            select ${runId}, unnest(${take.map((b) => b.id)}::bigint[]), ${undoRunId}`.execute(tx);
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

/**
 * The tables with deleted rows in `slice`, in reverse order of their last deletion there: within a
 * repair batch a merge deletes children before their parent, so parents come back first. (Over the
 * whole run the order may differ: a later rule's batches delete children of another parent.)
 */
async function parentsFirst(tx: Tx, infos: BackupInfo[], slice: Slice): Promise<BackupInfo[]> {
  const last = new Map<BackupInfo, number>();
  for (const info of infos.filter((i) => i.restore > 0)) {
    const { rows } = await sql<{ seq: string | null }>`
      select max(_rd_seq) as seq
        from ${sql.id(BACKUP_SCHEMA, info.backup)}
       where ${inSlice(info, slice)} and _rd_op = 'delete'`.execute(tx);
    if (rows[0]?.seq) last.set(info, Number(rows[0].seq));
  }
  return [...last.keys()].sort((a, b) => last.get(b)! - last.get(a)!);
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
