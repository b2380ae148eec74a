import { checkFor } from './checks/index.js';
import type { Finding } from './checks/types.js';
import { sql } from 'kysely';
import { preferParallel, queryError, type Tx } from './db.js';
import { describePgError, isPgError } from './errors.js';
import { RuleCannotRun, ruleErrorFinding } from './checks/rule-error.js';
import { isRecoveryConflict } from './catalog/recovery.js';
import type { Progress } from './report/progress.js';
import { describeRule, type DuplicateRule, type Rule } from './rules/types.js';
import { scanUnits, type ScanUnit } from './checks/duplicate-nesting.js';
import { detectChain } from './checks/duplicate-chain.js';
import { duplicateRows } from './checks/duplicate-rows.js';
import { diagnoseFinding, diagnosisSql } from './diagnosis/diagnose.js';
import type { DiagnoseOptions } from './diagnosis/types.js';

export interface ScanResult {
  findings: Finding[];
  /** How many rules were checked (summary.checks). */
  checks: number;
  rules: Rule[];
}

export interface ScanOptions {
  sample: number;
  progress: Progress;
  /** More read-only transactions on tx's snapshot (--jobs): rules then run side by side, one per transaction. */
  alongside?: Tx[];
  /**
   * Run `work` in a new read-only transaction (a new snapshot, its own connection). Given, a rule a
   * standby cancelled for a recovery conflict is retried once there; without it, the conflict is an error.
   */
  fresh?: <T>(work: (tx: Tx) => Promise<T>) => Promise<T>;
  /** A line for the operator (stderr), whatever the output format: e.g. that a rule was retried. */
  notice?: (line: string) => void;
  /** Diagnose each duplicate-rows and orphaned-rows finding (absent: --no-diagnose). */
  diagnose?: DiagnoseOptions;
}

/**
 * Run every rule's check inside the caller's read-only transaction — or, given transactions
 * alongside it on the same snapshot, several at a time. Findings keep the rules' order either way.
 */
export async function scan(tx: Tx, rules: Rule[], options: ScanOptions): Promise<ScanResult> {
  const slots = [tx, ...(options.alongside ?? [])];
  await Promise.all(slots.map(preferParallel));
  // Rules that one pass checks together are one unit of work (a chain); every other rule is one alone.
  let units: ScanUnit[];
  let lost = false;
  try {
    units = await scanUnits(tx, rules);
  } catch (e) {
    if (!isRecoveryConflict(e) || !options.fresh) throw queryError(e, 'Finding rules that share a pass');
    // The standby ended tx: the first worker starts on a new one, as after a cancelled rule.
    lost = true;
    units = await options.fresh(async (nt) => scanUnits(nt, rules));
  }
  const found: (Finding | null)[] = rules.map(() => null);
  let next = 0;
  let failed = false;
  const retried = new Set<number>();
  const take = () => (next < units.length && !failed ? next++ : null);
  const run = async (t: Tx, u: number) => {
    const unit = units[u]!;
    const position = `[${unit.rules.map((i) => i + 1).join(', ')}/${rules.length}]`;
    const results =
      unit.rules.length === 1
        ? [await checkOne(t, rules[unit.rules[0]!]!, position, options, slots.length > 1)]
        : await checkChain(t, unit, rules, position, options, slots.length > 1);
    unit.rules.forEach((i, k) => (found[i] = results[k]!));
  };
  // Units from `first` on, one after another, until none is left — or until the standby cancels
  // one for a recovery conflict, which ends the transaction (in a savepoint, the whole session):
  // then the unit to run first in a new transaction, if it is to be retried.
  const drain = async (t: Tx, first: number | null): Promise<{ retry: number | null } | null> => {
    for (let u = first ?? take(); u !== null; u = take()) {
      try {
        await run(t, u);
      } catch (e) {
        if (!isRecoveryConflict(e) || !options.fresh) {
          failed = true;
          throw e;
        }
        const again = !retried.has(u);
        retried.add(u);
        for (const i of units[u]!.rules) {
          if (!again) found[i] = ruleErrorFinding(rules[i]!, e as Error);
          options.notice?.(
            `${describeRule(rules[i]!)}: the standby cancelled the query (conflict with recovery); ` +
              (again ? 'retrying it once on a new snapshot' : 'cancelled again on the retry, so reported as an error'),
          );
        }
        return { retry: again ? u : null };
      }
    }
    return null;
  };
  // A worker goes on in new transactions, one at a time, each ended before the next begins.
  const worker = async (t: Tx, slot: number): Promise<void> => {
    let cancelled = lost && slot === 0 ? { retry: null } : await drain(t, null);
    while (cancelled && options.fresh) {
      const first = cancelled.retry;
      cancelled = await options.fresh(async (nt) => {
        await preferParallel(nt);
        return drain(nt, first);
      });
    }
  };
  const outcomes = await Promise.allSettled(slots.map(worker));
  const error = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (error) throw error.reason;
  return { findings: found.filter((f): f is Finding => f !== null), checks: rules.length, rules };
}

async function checkOne(
  tx: Tx,
  rule: Rule,
  position: string,
  options: ScanOptions,
  concurrent: boolean,
): Promise<Finding | null> {
  const check = checkFor(rule);
  const step = progressStep(`${position} ${check.id} ${check.describe(rule)}`, options, concurrent);
  // A savepoint per rule: a rule the server cannot run (a json key, a timeout) rolls back to it and
  // becomes that rule's error finding, and the transaction goes on for every other rule.
  await sql`savepoint rd_rule`.execute(tx);
  try {
    // The diagnosis rides on the detect statement (its CTEs read the damaged keys it found).
    const diagnosis = options.diagnose ? diagnosisSql(rule, options.diagnose) : null;
    const finding = await check.detect(tx, rule, { sample: options.sample, diagnosis });
    if (finding && options.diagnose) await diagnoseFinding(tx, finding, options.diagnose);
    await sql`release savepoint rd_rule`.execute(tx);
    return finding;
  } catch (e) {
    // The transaction is gone or aborted past its savepoint: the caller decides (see scan).
    if (isRecoveryConflict(e)) throw e;
    if (!isRuleLevel(e)) {
      throw queryError(e, `Checking ${rule.check} on ${describeRule(rule)}`);
    }
    await sql`rollback to savepoint rd_rule`.execute(tx);
    return ruleErrorFinding(rule, e);
  } finally {
    step.done();
  }
}

/**
 * A chain of duplicate-rows rules (duplicate-nesting.ts) in one statement, one pass over their
 * table. Should the server refuse it (a timeout, an expression failing on some row), each rule is
 * checked on its own, as without chains: its answer or its own error finding.
 */
async function checkChain(
  tx: Tx,
  unit: ScanUnit,
  rules: Rule[],
  position: string,
  options: ScanOptions,
  concurrent: boolean,
): Promise<(Finding | null)[]> {
  const chain = unit.rules.map((i) => rules[i] as DuplicateRule);
  const label = `${position} duplicate-rows ${chain.map((r) => duplicateRows.describe(r)).join(', ')} in one pass`;
  const step = progressStep(label, options, concurrent);
  await sql`savepoint rd_rule`.execute(tx);
  try {
    const detectOptions = chain.map((rule) => ({
      sample: options.sample,
      diagnosis: options.diagnose ? diagnosisSql(rule, options.diagnose) : null,
    }));
    const findings = await detectChain(tx, chain, detectOptions, unit.collations);
    for (const finding of findings)
      if (finding && options.diagnose) await diagnoseFinding(tx, finding, options.diagnose);
    await sql`release savepoint rd_rule`.execute(tx);
    step.done();
    return findings;
  } catch (e) {
    step.done();
    if (isRecoveryConflict(e)) throw e;
    if (!isRuleLevel(e)) throw queryError(e, `Checking duplicate-rows on ${chain.map(describeRule).join(', ')}`);
    await sql`rollback to savepoint rd_rule`.execute(tx);
    const why = isPgError(e) ? describePgError(e) : e.message;
    options.notice?.(
      `${chain.map(describeRule).join(', ')}: the pass they share failed (${why}); checking each on its own`,
    );
    const alone: (Finding | null)[] = [];
    for (const [k, rule] of chain.entries())
      alone.push(await checkOne(tx, rule, `[${unit.rules[k]! + 1}/${rules.length}]`, options, concurrent));
    return alone;
  }
}

/** Progress for one unit of work. Side by side, a line per finished unit: "label … 1.2s" lines would interleave. */
function progressStep(label: string, options: ScanOptions, concurrent: boolean): { done(): void } {
  const started = Date.now();
  return concurrent
    ? { done: () => options.progress.log(`${label} ${((Date.now() - started) / 1000).toFixed(1)}s`) }
    : options.progress.start(label);
}

/**
 * Errors that belong to one rule's query: data errors (22), syntax, type and privilege errors (42),
 * recovery conflicts and serialization failures (40), resource limits (53, 54) and a statement
 * timeout (57014). Connection loss and server shutdown (08, 57P0x) are not: the scan stops, exit 2.
 */
function isRuleLevel(e: unknown): e is Error {
  if (e instanceof RuleCannotRun) return true;
  if (!isPgError(e) || !e.code) return false;
  return e.code === '57014' || ['22', '42', '40', '53', '54'].includes(e.code.slice(0, 2));
}
