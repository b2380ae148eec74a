import type { Catalog } from '../catalog/types.js';
import type { Config } from '../config.js';
import { withDeletedParent } from './deleted-parent.js';
import { discoverRules, discoverTypedRules } from './discover.js';
import { rulesFromConfig } from './from-config.js';
import { rulesFromFlags } from './from-flags.js';
import { rulesFromReferences } from './from-references.js';
import { ruleIdentity, type CheckId, type ExpressionForms, type OrphanRule, type Rule } from './types.js';

export interface RuleSources {
  config: Config;
  configFile: string | null;
  duplicates: string[];
  orphans: string[];
  discover: boolean;
  only: CheckId[] | null;
}

/**
 * Config rules, then flag rules, then discovered ones. A declared rule replaces a discovered one
 * of the same check on the same table and columns, so nothing is reported twice.
 */
export function collectRules(catalog: Catalog, sources: RuleSources, forms?: ExpressionForms): Rule[] {
  const declared = [
    ...rulesFromConfig(catalog, sources.config.rules ?? [], sources.configFile ?? 'config'),
    ...rulesFromReferences(catalog, sources.config.references ?? [], sources.configFile ?? 'config'),
    ...rulesFromFlags(catalog, { duplicates: sources.duplicates, orphans: sources.orphans }),
  ];
  const taken = new Set(declared.map((r) => ruleIdentity(r, forms)));
  const discovered = sources.discover
    ? [...discoverRules(catalog), ...discoverTypedRules(catalog)].filter((r) => !taken.has(ruleIdentity(r, forms)))
    : [];
  const seen = new Set<string>();
  const intended = [...declared, ...discovered].flatMap((r): Rule[] => {
    if (r.check !== 'orphaned-rows') return [r];
    const rule = withDeletedParent(catalog, withComparison(catalog, r), sources.config.deletedParent);
    return rule ? [rule] : [];
  });
  return intended.filter((r) => {
    if (sources.only && !sources.only.includes(r.check)) return false;
    // The same declared rule given twice (config and flag) is checked once.
    const id = `${ruleIdentity(r)}|${r.where?.text ?? ''}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * A rule for a foreign key compares as that key's check does: MATCH FULL or SIMPLE, its own
 * operators and the parent columns' collations, pair by pair in the rule's column order.
 */
function withComparison(catalog: Catalog, rule: OrphanRule): OrphanRule {
  const fk = catalog.foreignKeys.find((f) => f.name === rule.foreignKey && f.table === rule.table.id);
  if (!fk || fk.pairs.length !== fk.columns.length) return rule;
  const pairs = rule.columns.map((c, i) => {
    const at = fk.columns.findIndex((x, n) => x === c && fk.refColumns[n] === rule.parentColumns[i]);
    return at < 0 ? null : fk.pairs[at]!;
  });
  if (pairs.some((p) => p === null)) return rule;
  return { ...rule, comparison: { matchFull: fk.matchFull, pairs: pairs as NonNullable<(typeof pairs)[number]>[] } };
}
