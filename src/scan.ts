import type { Tx } from './db.js';
import { checkFor } from './checks/index.js';
import type { Finding } from './checks/types.js';
import { queryError } from './db.js';
import type { Progress } from './report/progress.js';
import { describeRule, type DuplicateRule, type Rule } from './rules/types.js';
import { detectShared } from './checks/duplicate-rows-shared.js';

export interface ScanResult {
  findings: Finding[];
  /** How many rules were checked (summary.checks). */
  checks: number;
  rules: Rule[];
}

/**
 * Run every rule's check, in order, inside the caller's read-only transaction. Duplicate-rows rules
 * on the same table share one pass over it (see duplicate-rows-shared.ts).
 */
export async function scan(tx: Tx, rules: Rule[], options: { sample: number; progress: Progress }): Promise<ScanResult> {
  const findings: Finding[] = [];
  const shared = sharedDuplicateRules(rules);
  const done = new Map<Rule, Finding | null>();
  for (const [i, rule] of rules.entries()) {
    const group = shared.get(rule);
    if (group && !done.has(rule)) {
      const step = options.progress.start(`[${i + 1}/${rules.length}] duplicate-rows ${rule.table.id}: ${group.length} rules in one pass`);
      try {
        const results = await detectShared(tx, group, { sample: options.sample });
        group.forEach((r, n) => done.set(r, results[n] ?? null));
      } catch (e) {
        throw queryError(e, `Checking duplicate-rows on ${rule.table.id}`);
      } finally {
        step.done();
      }
    }
    if (done.has(rule)) {
      const finding = done.get(rule);
      if (finding) findings.push(finding);
      continue;
    }
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

/** Duplicate-rows rules grouped by table, where a table has two or more of them. */
function sharedDuplicateRules(rules: Rule[]): Map<Rule, DuplicateRule[]> {
  const byTable = new Map<string, DuplicateRule[]>();
  for (const r of rules) if (r.check === 'duplicate-rows') byTable.set(r.table.id, [...(byTable.get(r.table.id) ?? []), r]);
  const out = new Map<Rule, DuplicateRule[]>();
  for (const group of byTable.values()) if (group.length > 1) group.forEach((r) => out.set(r, group));
  return out;
}
