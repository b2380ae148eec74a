import { sql } from 'kysely';
import type { Catalog } from '../catalog/types.js';
import type { Db } from '../db.js';
import { RowdoctorError, connectionLost, unstopped } from '../errors.js';
import { BACKUP_SCHEMA } from '../journal/backup-tables.js';
import { rowTextSettings } from '../journal/row-text.js';
import { newRunId, takeRepairLock } from '../journal/run-lock.js';
import { finishLostRun, finishRun, markDeadRuns } from '../journal/run-status.js';
import { ensureBackupSchema } from '../journal/schema.js';
import { describeRule, type Rule } from '../rules/types.js';
import { withShadows } from '../sql/shadow.js';
import { runCounts, type RepairOptions, type RepairResult, type RuleAction } from './actions.js';
import { prepareBackupTables } from './backup.js';
import { statementStats } from './context.js';
import { referencesOfRun, tablesTouched } from './references.js';
import { repairEach } from './rule-batches.js';
import { createShadows, dropShadows } from './shadow.js';

/**
 * Repair every rule, batch by batch, on one session (temp tables live there). Each batch is its own
 * transaction with lock_timeout and statement_timeout; a batch that hits a lock timeout, deadlock
 * or serialization failure is retried, then reported as skipped. A dry run runs the very same
 * statements on copies of the tables in pg_temp (repair/shadow.ts), batch after batch, so a later
 * batch or rule is planned against what the earlier ones leave.
 */
export async function repairRules(
  session: Db,
  catalog: Catalog,
  rules: Rule[],
  declared: Rule[],
  options: RepairOptions,
): Promise<RepairResult> {
  const runId = newRunId();
  const statements = new Map<string, true>();
  const actions: RuleAction[] = [];
  const ruleCounts = () => runCounts(actions);
  /** The run has its row in rowdoctor_backup.runs. */
  let recorded = false;
  const batchesBefore = statementStats.batches;
  try {
    if (options.apply) {
      await takeRepairLock(session);
      await session.transaction().execute(async (tx) => {
        await ensureBackupSchema(tx);
        await markDeadRuns(tx, runId);
        const runOptions = {
          rules: rules.map(describeRule),
          backup: options.backup,
          batchSize: options.batchSize,
          rowText: await rowTextSettings(tx),
          references: referencesOfRun(catalog, rules, declared, options.infer),
          ...(options.plan?.md5 ? { plan: options.plan.md5 } : {}),
        };
        await sql`insert into ${sql.id(BACKUP_SCHEMA, 'runs')} (run_id, command, status, options)
          values (${runId}, 'repair', 'running', ${JSON.stringify(runOptions)})`.execute(tx);
      });
      recorded = true;
      // Every backup table the batches may write, made ready now rather than inside each batch.
      if (options.backup)
        await session
          .transaction()
          .execute((tx) => prepareBackupTables(tx, runId, tablesTouched(catalog, rules, declared, options.infer)));
    }
    let interrupted: boolean;
    /** A dry run's footprint: the rows it copied. */
    let plannedRows: number | undefined;
    const each = () => repairEach(session, catalog, rules, declared, options, runId, statements, actions);
    if (options.apply) interrupted = await each();
    else {
      // A dry run plans on copies of the tables it would touch: the same statements, the server's counts.
      const touched = tablesTouched(catalog, rules, declared, options.infer);
      const shadows = await createShadows(session, catalog, touched, { rules, declared, infer: options.infer });
      plannedRows = shadows.plannedRows;
      for (const [table, why] of shadows.copiedWhole)
        options.progress.note(`the dry run copies ${table} whole: ${why}`);
      try {
        interrupted = await withShadows(shadows, each);
      } finally {
        await dropShadows(session, shadows);
      }
      // A constraint the copies could not take: merges still fold collisions under it as --apply does
      // (they plan from the catalog), but a write it would refuse otherwise is only found by --apply.
      for (const what of shadows.uncopied) {
        const note = `the dry run's copies lack ${what}: a change it refuses is found by --apply only`;
        options.progress.note(note);
        for (const a of actions) a.notes.push(note);
      }
    }
    if (options.apply) {
      const skipped = actions.some((a) => a.skipped > 0);
      const status = interrupted ? 'interrupted' : skipped ? 'partial' : 'completed';
      await finishRun(session, runId, status, ruleCounts());
    }
    return {
      runId,
      applied: options.apply,
      actions,
      interrupted,
      statements: [...statements.keys()],
      ...(plannedRows === undefined ? {} : { plannedRows }),
    };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (connectionLost(e)) {
      const saved =
        recorded && options.reconnect && (await finishLostRun(options.reconnect, runId, ruleCounts(), message));
      throw lostConnection(e, runId, options, recorded ? statementStats.batches - batchesBefore : null, !!saved);
    }
    if (recorded) await finishRun(session, runId, 'failed', ruleCounts(), message).catch(() => undefined);
    throw e;
  }
}

/**
 * The one paragraph for a run whose session was lost (terminated, server restart, network drop):
 * what happened, what is safe, what to do. `committed`: the batches this run committed (null: the
 * run had not started writing).
 */
function lostConnection(
  e: unknown,
  runId: string,
  options: RepairOptions,
  committed: number | null,
  saved: boolean,
): RowdoctorError {
  const why = unstopped(e instanceof Error ? e.message : String(e));
  const head =
    `Repair ${options.apply ? `run ${runId} ` : '(dry run) '}lost its connection to the server (${why}): ` +
    'the session was terminated, the server restarted or the network dropped.';
  if (!options.apply)
    return new RowdoctorError(`${head} A dry run changes nothing; run the same command again.`, { cause: e });
  if (committed === null)
    return new RowdoctorError(`${head} It had not started: nothing was changed. Run the same command again.`, {
      cause: e,
    });
  const kept = options.backup
    ? `are safe, and backed up in ${BACKUP_SCHEMA} under run ${runId}`
    : 'are safe (not backed up: --no-backup)';
  const before = committed
    ? `${committed === 1 ? 'the batch' : `the ${committed.toLocaleString('en-US')} batches`} committed before ${kept}`
    : 'no batch had committed before';
  return new RowdoctorError(
    `${head} Each batch commits whole: ${before}; the batch in flight, if any, committed whole or not at all. ` +
      (saved
        ? 'The run is recorded as interrupted. '
        : `The run is listed as interrupted (rowdoctor runs) and recorded so by the next run. `) +
      'Running the same command again finishes the job.',
    { cause: e },
  );
}
