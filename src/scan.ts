import { checkFor } from './checks/index.js';
import type { Finding } from './checks/types.js';
import { sql } from 'kysely';
import { preferParallel, queryError, type Tx } from './db.js';
import { isPgError } from './errors.js';
import { ruleErrorFinding } from './checks/rule-error.js';
import type { Progress } from './report/progress.js';
import { describeRule, type Rule } from './rules/types.js';

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
}

/**
 * Run every rule's check inside the caller's read-only transaction — or, given transactions
 * alongside it on the same snapshot, several at a time. Findings keep the rules' order either way.
 */
export async function scan(tx: Tx, rules: Rule[], options: ScanOptions): Promise<ScanResult> {
  const slots = [tx, ...(options.alongside ?? [])];
  await Promise.all(slots.map(preferParallel));
  const found: (Finding | null)[] = rules.map(() => null);
  let next = 0;
  let failed = false;
  const worker = async (t: Tx) => {
    while (next < rules.length && !failed) {
      const i = next++;
      found[i] = await checkOne(t, rules[i]!, `[${i + 1}/${rules.length}]`, options, slots.length > 1).catch(
        (e: unknown) => {
          failed = true;
          throw e;
        },
      );
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
  const label = `${position} ${check.id} ${check.describe(rule)}`;
  // Side by side, a line per finished check: "label … 1.2s" lines would interleave.
  const started = Date.now();
  const step = concurrent
    ? { done: () => options.progress.log(`${label} ${((Date.now() - started) / 1000).toFixed(1)}s`) }
    : options.progress.start(label);
  // A savepoint per rule: a rule the server cannot run (a json key, a timeout) rolls back to it and
  // becomes that rule's error finding, and the transaction goes on for every other rule.
  await sql`savepoint rd_rule`.execute(tx);
  try {
    const finding = await check.detect(tx, rule, { sample: options.sample });
    await sql`release savepoint rd_rule`.execute(tx);
    return finding;
  } catch (e) {
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
 * Errors that belong to one rule's query: data errors (22), syntax, type and privilege errors (42),
 * recovery conflicts and serialization failures (40), resource limits (53, 54) and a statement
 * timeout (57014). Connection loss and server shutdown (08, 57P0x) are not: the scan stops, exit 2.
 */
function isRuleLevel(e: unknown): e is Error {
  if (!isPgError(e) || !e.code) return false;
  return e.code === '57014' || ['22', '42', '40', '53', '54'].includes(e.code.slice(0, 2));
}
