import { sql } from 'kysely';
import type { Catalog } from '../catalog/types.js';
import { repairerFor } from '../checks/index.js';
import { preferParallel, type Db } from '../db.js';
import { BatchSplit, RowdoctorError, connectionLost, describePgError, isPgError } from '../errors.js';
import { recordCounts } from '../journal/run-status.js';
import { describeRule, type Rule } from '../rules/types.js';
import { inRealNames } from '../sql/shadow.js';
import { workTable } from '../sql/work-table.js';
import { runCounts, type RepairOptions, type RuleAction } from './actions.js';
import { batchTransaction, nextBatchSize, seconds } from './batch-transaction.js';
import { addCounts, statementStats, zeroCounts, type BatchContext, type Counts, type SkippedGroup } from './context.js';
import { describeGroups } from './groups.js';
import { waitForReplicas } from './replica-lag.js';
import type { BatchResult } from './types.js';

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
export async function repairEach(
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
      if (!options.plan?.restrict) return n;
      // A reviewed plan: its groups only; one found since is left alone.
      const { total, unplanned, vanished } = await options.plan.restrict(tx, rule);
      if (unplanned) action.notes.push(`${plural(unplanned, 'group')} not in the plan left alone (found since)`);
      if (vanished.length) {
        // Skipped like a group whose rows changed under the lock: it is one, found before any batch.
        action.skipped += vanished.length;
        action.skippedGroups.push(...vanished.slice(0, options.sample));
        action.notes.push(`${plural(vanished.length, 'group')} of the plan no longer found: ${vanished[0]!.reason}`);
      }
      return total;
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
      if ('split' in outcome) {
        // Refused by the server as a whole: its halves, each its own transaction, down to the refused group.
        const mid = from + Math.floor((to - from) / 2);
        const again = label.startsWith('retrying') ? 'retrying groups' : 'groups';
        await batch(from, mid, `${again} ${from + 1}–${mid}`);
        await batch(mid, to, `${again} ${mid + 1}–${to}`);
        // What a transaction of this many groups took before the server refused it: sizes the next batch.
        return outcome.ms;
      }
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

function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

type BatchOutcome =
  | { counts: Counts; result: BatchResult; skippedGroups: SkippedGroup[]; setAside: number[]; ms: number }
  | { error: string }
  /** The server refused the batch's groups together (BatchSplit): rolled back, run again in halves. */
  | { split: string; ms: number };

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
  const began = performance.now();
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
          plan: options.plan,
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
    if (e instanceof BatchSplit) {
      const ms = performance.now() - began;
      // Its row locks were held all the same.
      if (options.apply) statementStats.longestTransactionMs = Math.max(statementStats.longestTransactionMs, ms);
      return { split: e.message, ms };
    }
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
