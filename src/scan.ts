import type { Tx } from './db.js';
import { checkFor } from './checks/index.js';
import type { Finding } from './checks/types.js';
import { queryError } from './db.js';
import type { Progress } from './report/progress.js';
import { describeRule, type Rule } from './rules/types.js';

export interface ScanResult {
  findings: Finding[];
  /** How many rules were checked (summary.checks). */
  checks: number;
  rules: Rule[];
}

/** Run every rule's check, in order, inside the caller's read-only transaction. */
export async function scan(tx: Tx, rules: Rule[], options: { sample: number; progress: Progress }): Promise<ScanResult> {
  const findings: Finding[] = [];
  for (const [i, rule] of rules.entries()) {
    const check = checkFor(rule);
    const step = options.progress.start(`[${i + 1}/${rules.length}] ${check.id} ${check.describe(rule)}`);
    try {
      const finding = await check.detect(tx, rule, { sample: options.sample });
      if (finding) findings.push(finding);
    } catch (e) {
      throw queryError(e, `Checking ${rule.check} on ${describeRule(rule)}`);
    } finally {
      step.done();
    }
  }
  return { findings, checks: rules.length, rules };
}
