import { checkFor } from './checks/index.js';
import type { Finding } from './checks/types.js';
import { preferParallel, queryError, type Tx } from './db.js';
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
  try {
    return await check.detect(tx, rule, { sample: options.sample });
  } catch (e) {
    throw queryError(e, `Checking ${rule.check} on ${describeRule(rule)}`);
  } finally {
    step.done();
  }
}
