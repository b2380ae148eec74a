import type { Catalog } from '../catalog/types.js';
import type { DeletedParent, OrphanRule } from './types.js';

/**
 * Apply what the config says children of soft-deleted parents are (the rule's own `deletedParent`,
 * else the config default, else `error`). `ignore` hands the rule a parent without its marker, so
 * every check and repair step sees a soft-deleted parent as a parent. A discovered rule that exists
 * only for soft-deleted parents (a valid foreign key into a soft-deleting table) then has nothing
 * left to find: it is dropped. Returns null for a dropped rule.
 */
export function withDeletedParent(catalog: Catalog, rule: OrphanRule, fallback?: DeletedParent): OrphanRule | null {
  const intent = rule.deletedParent ?? fallback ?? 'error';
  if (intent === 'error' || !rule.parent.softDelete) return rule;
  const onlyDeletedParents = findsOnlyDeletedParents(catalog, rule);
  if (intent === 'warning')
    return { ...rule, deletedParent: intent, severity: onlyDeletedParents ? 'warning' : rule.severity };
  if (onlyDeletedParents) return null;
  return { ...rule, deletedParent: intent, parent: { ...rule.parent, softDelete: null } };
}

/**
 * A discovered rule for a valid foreign key into a soft-deleting table: the key rules out missing
 * parents, so all it can find are children of soft-deleted parents — rows the application may keep
 * on purpose (an archived customer's orders). What to do with them is the operator's decision.
 */
export function findsOnlyDeletedParents(catalog: Catalog, rule: OrphanRule): boolean {
  const fk = catalog.foreignKeys.find((f) => f.name === rule.foreignKey && f.table === rule.table.id);
  return rule.source === 'discovered' && rule.parent.softDelete !== null && fk?.valid === true;
}

/**
 * The rule as repair sees it: children kept on purpose (`warning`) are reported, never deleted,
 * nulled or soft-deleted — repair acts only on rows with no parent row at all.
 */
export function repairScope(rule: OrphanRule): OrphanRule {
  if (rule.deletedParent !== 'warning' || !rule.parent.softDelete) return rule;
  return { ...rule, parent: { ...rule.parent, softDelete: null } };
}
