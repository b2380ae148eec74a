import type { ConfigRule } from '../config.js';
import type { Rule } from './types.js';

/** `schema.table` with any part containing a dot or quote written in double quotes. */
export function dottedName(...parts: string[]): string {
  return parts.map((p) => (/^[^".]+$/.test(p) ? p : `"${p.replace(/"/g, '""')}"`)).join('.');
}

/** A resolved rule written back as the config entry that declares it (used by init and repair hints). */
export function ruleToConfig(rule: Rule): ConfigRule {
  const table = dottedName(rule.table.schema, rule.table.name);
  const key =
    rule.check === 'orphaned-rows' ? [] : rule.key.map((k) => (k.kind === 'column' ? k.column : { expr: k.expr.text }));
  const where = rule.where ? { where: rule.where.text } : {};
  switch (rule.check) {
    case 'duplicate-rows':
      return {
        check: rule.check,
        table,
        key,
        ...where,
        ...(rule.includeSoftDeleted ? { includeSoftDeleted: true } : {}),
        ...(rule.nullsNotDistinct ? { nullsNotDistinct: true } : {}),
        ...(rule.createdAt ? { createdAt: rule.createdAt } : {}),
        repair: rule.repair,
      };
    case 'orphaned-rows':
      return {
        check: rule.check,
        table,
        ...(rule.columns.length === 1 ? { column: rule.columns[0]! } : { columns: rule.columns }),
        references: { table: dottedName(rule.parent.schema, rule.parent.name), columns: rule.parentColumns },
        ...where,
        ...(rule.deletedParent && rule.deletedParent !== 'error' ? { deletedParent: rule.deletedParent } : {}),
        ...(rule.createdAt ? { createdAt: rule.createdAt } : {}),
        repair: rule.repair,
      };
    case 'soft-delete-conflicts':
      return {
        check: rule.check,
        table,
        key,
        ...where,
        ...(rule.nullsNotDistinct ? { nullsNotDistinct: true } : {}),
        repair: rule.repair,
      };
  }
}
