import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Catalog } from '../catalog/types.js';
import type { Finding } from '../checks/types.js';
import { repairerFor } from '../checks/index.js';
import { preferParallel, type Db, type Tx } from '../db.js';
import {
  BatchRetry,
  RETRYABLE_SQLSTATES,
  RowdoctorError,
  connectionLost,
  describePgError,
  isPgError,
  unstopped,
} from '../errors.js';
import type { Progress } from '../report/progress.js';
import { describeRule, type Rule } from '../rules/types.js';
import { BACKUP_SCHEMA, ensureBackupSchema } from './backup.js';
import { addCounts, statementStats, zeroCounts, type BatchContext, type Counts } from './context.js';
import type { BatchResult, PlanSample, SkippedGroup } from './types.js';
import { workTable } from '../sql/work-table.js';
import { describeGroups } from './groups.js';
import { finishLostRun, finishRun, markDeadRuns, recordCounts } from './run-status.js';
import { rowTextSettings } from './row-text.js';
import { waitForReplicas } from './replica-lag.js';
import { referencesOfRun, tablesTouched } from './references.js';
import { createShadows, dropShadows } from './shadow.js';
import { inRealNames, withShadows } from '../sql/shadow.js';

export interface RepairOptions {
  apply: boolean;
  backup: boolean;
  batchSize: number;
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  infer: boolean;
  sample: number;
  progress: Progress;
  /** Set by Ctrl-C: the current batch finishes (or rolls back), no new batch starts. */
  interrupted: () => boolean;
  retries?: number;
  /** Target time of one batch transaction: the batch size adapts between batches (0 or absent: fixed). */
  maxTransactionMs?: number;
  /** Pause between batches while a streaming replica's replay lag exceeds this (0: never). */
  maxReplicaLagMs?: number;
  /** Rules whose finding is taken from their enumeration (their repairer must offer finding()). */
  findingsFor?: ReadonlySet<Rule>;
  /** Where a run whose session is lost is recorded as interrupted (the pool: a new connection). */
  reconnect?: Db;
}

/** One rule's outcome: the contract's `actions` entry plus what the report shows. */
export interface RuleAction extends Counts {
  rule: Rule;
  groups: number;
  skipped: number;
  /** Why groups were skipped (lock timeouts, rows still referenced …). */
  notes: string[];
  samples: PlanSample[];
  /** Up to --sample of the skipped groups, each with its key, ids and reason (contract §JSON). */
  skippedGroups: SkippedGroup[];
  /** What the rule's enumeration found, before this rule's batches (only for options.findingsFor). */
  finding?: Finding | null;
}

export interface RepairResult {
  runId: string;
  applied: boolean;
  actions: RuleAction[];
  interrupted: boolean;
  statements: string[];
}

/** An action's counts, as the contract's `actions` entries and the runs table spell them. */
export function actionCounts(a: RuleAction) {
  return {
    groups: a.groups,
    rowsDeleted: a.rowsDeleted,
    rowsUpdated: a.rowsUpdated,
    childRowsRepointed: a.childRowsRepointed,
    childRowsMerged: a.childRowsMerged,
    redirected: a.redirected,
    skipped: a.skipped,
  };
}

export function newRunId(now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${t}-${randomBytes(2).toString('hex')}`;
}

/** Both repairs and undos take it: two of them on one database never overlap. */
export const REPAIR_LOCK_KEY = sql`hashtextextended('rowdoctor.repair', 0)`;

export async function takeRepairLock(session: Db): Promise<void> {
  const got = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${REPAIR_LOCK_KEY}) as ok`.execute(session);
  if (got.rows[0]?.ok) return;
  // Who holds the lock: an advisory lock on a bigint key shows its low 32 bits as objid.
  const holder = await sql<{ pid: number; app: string }>`
    select l.pid, a.application_name as app
      from pg_locks l
      join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.objid = (${REPAIR_LOCK_KEY} & x'ffffffff'::bigint)::oid
     limit 1`.execute(session);
  const who = holder.rows[0]
    ? ` (backend pid ${holder.rows[0].pid}, ${holder.rows[0].app || 'no application_name'})`
    : '';
  throw new RowdoctorError(`Another rowdoctor repair or undo is running on this database${who}.`, {
    hint: 'Wait for it to finish; two repairs on one database never run at once.',
  });
}

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
        };
        await sql`insert into ${sql.id(BACKUP_SCHEMA, 'runs')} (run_id, command, status, options)
          values (${runId}, 'repair', 'running', ${JSON.stringify(runOptions)})`.execute(tx);
      });
      recorded = true;
    }
    let interrupted: boolean;
    const each = () => repairEach(session, catalog, rules, declared, options, runId, statements, actions);
    if (options.apply) interrupted = await each();
    else {
      // A dry run plans on copies of the tables it would touch: the same statements, the server's counts.
      const shadows = await createShadows(session, catalog, tablesTouched(catalog, rules, declared, options.infer));
      try {
        interrupted = await withShadows(shadows, each);
      } finally {
        await dropShadows(session, shadows);
      }
    }
    if (options.apply) {
      const skipped = actions.some((a) => a.skipped > 0);
      const status = interrupted ? 'interrupted' : skipped ? 'partial' : 'completed';
      await finishRun(session, runId, status, ruleCounts());
    }
    return { runId, applied: options.apply, actions, interrupted, statements: [...statements.keys()] };
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

/** A run's counts as rowdoctor_backup.runs keeps them: one entry per rule. */
function runCounts(actions: RuleAction[]) {
  return actions.map((a) => ({ rule: describeRule(a.rule), ...actionCounts(a) }));
}

/** Why a group set aside for its locks is finally skipped. */
const LOCKED = 'its rows were held by another transaction (set aside, then retried at the end of the rule)';

/** Consecutive group numbers as batch ranges (from, to], each at most `size` groups. */
function ranges(ns: number[], size: number): [number, number][] {
  const out: [number, number][] = [];
  for (const n of ns) {
    const last = out[out.length - 1];
    if (last && last[1] === n - 1 && last[1] - last[0] < size) last[1] = n;
    else out.push([n - 1, n]);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Each rule, batch by batch; returns whether Ctrl-C stopped it early. Groups a batch sets aside
 * (another transaction holds some of their rows) or cannot finish (a lock timeout, deadlock or
 * serialization failure after its retries) are retried after the rule's last batch, each alone in
 * the last pass, and only then reported as skipped — each with its reason, and one line on stderr.
 */
async function repairEach(
  session: Db,
  catalog: Catalog,
  rules: Rule[],
  declared: Rule[],
  options: RepairOptions,
  runId: string,
  statements: Map<string, true>,
  actions: RuleAction[],
): Promise<boolean> {
  let interrupted = false;
  for (const rule of rules) {
    const action: RuleAction = {
      rule,
      ...zeroCounts(),
      groups: 0,
      skipped: 0,
      notes: [],
      samples: [],
      skippedGroups: [],
    };
    actions.push(action);
    if (interrupted) continue;
    const repairer = repairerFor(rule);
    const total = await session.transaction().execute(async (tx) => {
      await preferParallel(tx);
      const n = await repairer.groups(tx, rule);
      if (options.findingsFor?.has(rule) && repairer.finding)
        action.finding = await repairer.finding(tx, rule, options.sample);
      return n;
    });
    /** Groups to retry, with why they were left. */
    const aside = new Map<number, string>();
    const started = Date.now();
    let done = 0;
    /** Runs groups (from, to]; returns how long its transaction took (null: it failed). */
    const batch = async (from: number, to: number, label: string): Promise<number | null> => {
      if (options.apply) await waitForReplicas(session, options.maxReplicaLagMs ?? 0);
      const changed = actions.reduce(
        (n, a) => n + a.rowsDeleted + a.rowsUpdated + a.childRowsRepointed + a.childRowsMerged,
        0,
      );
      const rows = `${changed.toLocaleString('en-US')} rows ${options.apply ? 'changed' : 'to change'} so far`;
      const elapsed = Date.now() - started;
      const left = done ? ` · ~${seconds((elapsed / done) * (total - done))} left` : '';
      const size = `batch of ${(to - from).toLocaleString('en-US')}`;
      const step = options.progress.start(
        `${rule.check} ${rule.table.id}: ${label} of ${total} · ${rows} · ${size} · ${seconds(elapsed)}${left}`,
      );
      const outcome = await runBatch(
        session,
        catalog,
        declared,
        rule,
        runId,
        statements,
        from,
        to,
        options,
        options.sample - action.samples.length,
        options.sample - action.skippedGroups.length,
        // The run's counts including this batch, committed with it: a run killed later still says what it did.
        (counts, result) =>
          runCounts(
            actions.map((a) =>
              a === action
                ? {
                    ...a,
                    ...addCounts(a, counts),
                    groups: a.groups + result.groups,
                    skipped: a.skipped + result.skipped,
                  }
                : a,
            ),
          ),
      );
      step.done();
      done += to - from;
      if ('error' in outcome) {
        for (let n = from + 1; n <= to; n++) aside.set(n, outcome.error);
        return null;
      }
      for (const n of outcome.setAside) aside.set(n, LOCKED);
      action.skippedGroups.push(...outcome.skippedGroups.slice(0, options.sample - action.skippedGroups.length));
      for (const r of outcome.result.refused ?? []) {
        const room = options.sample - action.skippedGroups.length;
        if (room <= 0) break;
        action.skippedGroups.push(...(await describeGroups(session, sql`select ${r.n}::bigint as n`, r.reason, room)));
      }
      Object.assign(action, addCounts(action, outcome.counts));
      action.groups += outcome.result.groups;
      action.skipped += outcome.result.skipped;
      if (outcome.result.reason && !action.notes.includes(outcome.result.reason))
        action.notes.push(outcome.result.reason);
      if (outcome.result.samples)
        action.samples.push(...outcome.result.samples.slice(0, options.sample - action.samples.length));
      return outcome.ms;
    };
    const stop = (what: string) => {
      interrupted = true;
      action.notes.push(`interrupted before ${what}; run the same command again to finish`);
    };
    const target = options.maxTransactionMs ?? 0;
    let size = target > 0 ? Math.min(options.batchSize, FIRST_BATCH) : options.batchSize;
    for (let from = 0; from < total;) {
      if (options.interrupted()) {
        stop(`groups ${from + 1}–${total}`);
        break;
      }
      const to = Math.min(from + size, total);
      const ms = await batch(from, to, `groups ${from + 1}–${to}`);
      if (target > 0) size = nextBatchSize(size, ms, target, options.batchSize);
      from = to;
    }
    const passes = options.retries ?? 3;
    for (let pass = 1; pass <= passes && aside.size && !interrupted; pass++) {
      const ns = [...aside.keys()].sort((a, b) => a - b);
      const wait = 250 * pass;
      options.progress.note(
        `${rule.table.id}: ${plural(ns.length, 'group')} set aside (rows held by other transactions, ` +
          `or a batch that kept failing); retry ${pass} of ${passes} in ${wait}ms`,
      );
      await sleep(wait);
      // The last pass takes each group alone (one held group then costs only itself), unless so many
      // are left that one transaction each would take too long: then batches again.
      const alone = pass === passes && ns.length <= LAST_PASS_ALONE;
      for (const [from, to] of ranges(ns, alone ? 1 : size)) {
        if (options.interrupted()) {
          stop('retrying the groups set aside');
          break;
        }
        for (let n = from + 1; n <= to; n++) aside.delete(n);
        await batch(from, to, `retrying groups ${from + 1}–${to}`);
      }
    }
    const byReason = new Map<string, number[]>();
    for (const [n, reason] of aside) byReason.set(reason, [...(byReason.get(reason) ?? []), n]);
    for (const [reason, ns] of byReason) {
      action.skipped += ns.length;
      const what = `${plural(ns.length, 'group')} skipped: ${reason}`;
      action.notes.push(what);
      options.progress.note(`${rule.table.id}: ${what}`);
      const these = sql`select unnest(${sql.val(ns)}::bigint[]) as n`;
      const room = options.sample - action.skippedGroups.length;
      action.skippedGroups.push(...(await describeGroups(session, these, reason, room)));
    }
  }
  return interrupted;
}

/** At most this many set-aside groups are retried one transaction each in the last pass. */
const LAST_PASS_ALONE = 200;

/** The first batch of a time-sized walk: small, so that a slow table costs one short transaction. */
const FIRST_BATCH = 50;

/**
 * The next batch size from how long the last batch's transaction took (as pt-online-schema-change
 * sizes its chunks): halved when over the target, grown — at most doubled — while under it, never
 * above `max`. A failed batch (null) halves it too.
 */
export function nextBatchSize(size: number, ms: number | null, target: number, max: number): number {
  if (ms === null || ms > target) return Math.max(1, Math.floor(size / 2));
  const factor = Math.min(2, target / Math.max(ms, 1));
  return factor <= 1 ? size : Math.min(max, Math.max(size + 1, Math.floor(size * factor)));
}

function seconds(ms: number): string {
  return ms < 60_000
    ? `${(ms / 1000).toFixed(1)}s`
    : `${Math.floor(ms / 60_000)}min ${Math.round((ms % 60_000) / 1000)}s`;
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

type BatchOutcome =
  | { counts: Counts; result: BatchResult; skippedGroups: SkippedGroup[]; setAside: number[]; ms: number }
  | { error: string };

async function runBatch(
  session: Db,
  catalog: Catalog,
  declared: Rule[],
  rule: Rule,
  runId: string,
  statements: Map<string, true>,
  from: number,
  to: number,
  options: RepairOptions,
  sample: number,
  skipSample: number,
  countsAfter: (counts: Counts, result: BatchResult) => unknown,
): Promise<BatchOutcome> {
  try {
    const attempt = await batchTransaction(
      session,
      options,
      `${rule.table.id}: groups ${from + 1}–${to}`,
      async (tx) => {
        let temp = 0;
        const ctx: BatchContext = {
          tx,
          catalog,
          declared,
          infer: options.infer,
          runId,
          apply: options.apply,
          backup: options.backup,
          counts: zeroCounts(),
          skippedGroups: [],
          skipSample,
          setAside: [],
          statements,
          nextTemp: () => workTable(`rd_t${++temp}`),
        };
        const result = await repairerFor(rule).batch(ctx, rule, from, to, sample);
        if (options.apply) await recordCounts(tx, runId, countsAfter(ctx.counts, result));
        return { counts: ctx.counts, result, skippedGroups: ctx.skippedGroups, setAside: ctx.setAside };
      },
    );
    if ('error' in attempt) return attempt;
    statementStats.batches++;
    if (options.apply) statementStats.longestTransactionMs = Math.max(statementStats.longestTransactionMs, attempt.ms);
    return { ...attempt.value, ms: attempt.ms };
  } catch (e) {
    if (isPgError(e) && !connectionLost(e)) {
      const hint = e.code === '42501' ? 'grant the privilege named above, or run as a role that has it' : undefined;
      // A dry run's error names its copies: the user reads the tables they stand for.
      throw new RowdoctorError(`Repairing ${describeRule(rule)} failed: ${inRealNames(describePgError(e))}`, {
        hint,
        cause: e,
      });
    }
    throw e;
  }
}

/** How one batch transaction went: what it returned and how long it took, or why it gave up. */
export type Attempted<T> = { value: T; ms: number } | { error: string };

export interface BatchTransactionOptions {
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  progress: Progress;
  retries?: number;
}

/**
 * One batch, in its own transaction, with statement_timeout and a lock_timeout under half the
 * server's deadlock_timeout: in a lock cycle with the application, rowdoctor gives up before the
 * server picks a victim. A lock timeout, deadlock, serialization failure or BatchRetry rolls the
 * batch back and retries it (`what` names it in the one stderr line each retry gets); after its
 * retries it returns why. Any other error is thrown. Repair and undo both run their batches here.
 */
export async function batchTransaction<T>(
  session: Db,
  options: BatchTransactionOptions,
  what: string,
  body: (tx: Tx) => Promise<T>,
): Promise<Attempted<T>> {
  const attempts = (options.retries ?? 3) + 1;
  for (let attempt = 1; ; attempt++) {
    const began = performance.now();
    try {
      const value = await session.transaction().execute(async (tx) => {
        const halfDeadlockTimeout = sql`extract(epoch from current_setting('deadlock_timeout')::interval) * 500`;
        const lockTimeout = sql`least(${options.lockTimeoutMs}, greatest(1, ${halfDeadlockTimeout}))::int::text`;
        await sql`
          select set_config('lock_timeout', ${lockTimeout}, true),
                 set_config('statement_timeout', ${String(options.statementTimeoutMs)}, true)`.execute(tx);
        return body(tx);
      });
      return { value, ms: performance.now() - began };
    } catch (e) {
      const retryable =
        e instanceof BatchRetry
          ? { what: e.message, why: e.message }
          : isPgError(e) && RETRYABLE_SQLSTATES.has(e.code ?? '')
            ? { what: `${e.message} (${e.code})`, why: describePgError(e) }
            : null;
      if (!retryable) throw e;
      if (attempt >= attempts) return { error: `${retryable.why} after ${attempts} attempts` };
      options.progress.note(`${what}: ${retryable.what}; retry ${attempt} of ${attempts - 1}`);
      await sleep(100 * 2 ** attempt);
    }
  }
}
