import type { Catalog } from '../catalog/types.js';
import { resolveColumn, resolveTable } from '../catalog/names.js';
import { defaultSchemas, collectErrors } from '../rules/defaults.js';
import { discoverRules, discoverTypedRules } from '../rules/discover.js';
import { orphanFlagRule, parseTableWithKey } from '../rules/from-flags.js';
import { resolveKey } from '../rules/from-config.js';
import type { KeyPart, Rule } from '../rules/types.js';
import { sqlFragment } from '../sql/fragment.js';
import type { Expected, ExpectedUnique } from './types.js';
import { RowdoctorError } from '../errors.js';

/**
 * What should be enforced: a unique key for each declared duplicate-rows rule (partial WHERE
 * <marker> IS NULL on a soft-deleting table, matching the rule), a foreign key for each declared
 * orphaned-rows rule, --expect / --expect-fk flags, and with --discover the inferred references.
 */
export function expectedConstraints(
  catalog: Catalog,
  rules: Rule[],
  flags: { expect: string[]; expectFk: string[]; discover: boolean },
): Expected[] {
  const out: Expected[] = [];
  for (const rule of rules.filter((r) => r.source !== 'discovered')) {
    if (rule.check === 'duplicate-rows') {
      out.push(
        uniqueFor(
          rule.table,
          rule.key,
          rule.where?.text ?? null,
          !rule.includeSoftDeleted,
          rule.nullsNotDistinct,
          `${rule.source} rule`,
        ),
      );
    } else if (rule.check === 'orphaned-rows') {
      out.push({
        kind: 'foreign-key',
        table: rule.table,
        columns: rule.columns,
        parent: rule.parent,
        parentColumns: rule.parentColumns,
        source: `${rule.source} rule`,
        ...(rule.typed ? { typed: rule.typed } : {}),
      });
    }
  }
  out.push(
    ...collectErrors(
      flags.expect.map((text) => () => {
        const { table, parts } = parseTableWithKey(text, '--expect');
        const t = resolveTable(catalog, table, defaultSchemas(catalog), `--expect '${text}'`);
        // An explicit --expect means exactly the key typed: no soft-delete predicate is added.
        return uniqueFor(t, resolveKey(t, parts, `--expect '${text}'`), null, false, false, 'flag');
      }),
      '--expect names things the database does not have',
    ),
  );
  out.push(
    ...collectErrors(
      flags.expectFk.map((text) => () => {
        const r = orphanFlagRule(text, '--expect-fk');
        if (r.check !== 'orphaned-rows' || typeof r.references === 'string')
          throw new RowdoctorError(`--expect-fk '${text}' is not 'child(cols) -> parent(cols)'.`);
        const child = resolveTable(catalog, r.table, defaultSchemas(catalog), `--expect-fk '${text}'`);
        const parent = resolveTable(catalog, r.references.table, defaultSchemas(catalog), `--expect-fk '${text}'`);
        const columns = (r.columns ?? []).map((c) => resolveColumn(child, c, `--expect-fk '${text}'`));
        const parentColumns = r.references.columns.map((c) => resolveColumn(parent, c, `--expect-fk '${text}'`));
        if (columns.length !== parentColumns.length)
          throw new RowdoctorError(
            `--expect-fk '${text}': ${columns.length} column(s) on one side, ${parentColumns.length} on the other.`,
          );
        return { kind: 'foreign-key' as const, table: child, columns, parent, parentColumns, source: 'flag' };
      }),
      '--expect-fk names things the database does not have',
    ),
  );
  if (flags.discover) {
    for (const r of [...discoverRules(catalog), ...discoverTypedRules(catalog)]) {
      if (r.check === 'orphaned-rows' && r.inferred)
        out.push({
          kind: 'foreign-key',
          table: r.table,
          columns: r.columns,
          parent: r.parent,
          parentColumns: r.parentColumns,
          source: 'inferred',
          ...(r.typed ? { typed: r.typed } : {}),
        });
    }
  }
  const seen = new Set<string>();
  return out.filter((e) => {
    const key = (k: KeyPart) => (k.kind === 'column' ? k.column : k.expr.text);
    const id =
      e.kind === 'unique'
        ? `u|${e.table.id}|${e.key.map(key).join(',')}|${e.where?.text ?? ''}`
        : `f|${e.table.id}|${e.typed ? `${e.typed.typeColumn}=${e.typed.type}|` : ''}` +
          `${e.columns.join(',')}|${e.parent.id}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * The unique key a duplicate-rows rule implies. On a table with a soft-delete marker (and a rule
 * that leaves deleted rows out) the index is partial: WHERE <marker> IS NULL, and the rule's scope.
 */
function uniqueFor(
  table: ExpectedUnique['table'],
  key: ExpectedUnique['key'],
  where: string | null,
  aliveOnly: boolean,
  nullsNotDistinct: boolean,
  source: string,
): ExpectedUnique {
  // Written as SQL text: the server normalises it (see normalize.ts) before anything compares it.
  const text = [where ? `(${where})` : null, aliveOnly && table.softDelete ? aliveText(table.softDelete) : null]
    .filter(Boolean)
    .join(' AND ');
  return { kind: 'unique', table, key, where: text ? sqlFragment(text, 'where') : null, nullsNotDistinct, source };
}

function aliveText(marker: { column: string; kind: 'timestamp' | 'boolean' }): string {
  const c = `"${marker.column.replace(/"/g, '""')}"`;
  return marker.kind === 'timestamp' ? `${c} IS NULL` : `${c} IS NOT TRUE`;
}
