import type { Catalog, ForeignKey } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { foreignKeyDdl } from './ddl.js';
import { notValidDetail } from './match.js';
import { fixFor } from './migration.js';
import type { NameAllocator } from './names.js';
import type { ExpectedForeignKey, Verdict } from './types.js';
import { foreignKeyViolations } from './violations.js';

/**
 * Every NOT VALID or NOT ENFORCED foreign key in the checked schemas that no expectation covered,
 * as `invalid` (like every INVALID unique index): rows written before it was added are unchecked,
 * while it already rejects the application's new ones — or, NOT ENFORCED, it checks none at all.
 * A run of a migration whose VALIDATE failed leaves exactly these behind; verify must not exit 0
 * past them.
 */
export async function notValidForeignKeys(
  tx: Tx,
  db: Db,
  catalog: Catalog,
  seen: Set<ForeignKey>,
  options: { lockTimeout: string },
  names: NameAllocator,
  violations: (counter: () => Promise<number>) => Promise<number | null>,
): Promise<Verdict[]> {
  const verdicts: Verdict[] = [];
  const byId = new Map(catalog.tables.map((t) => [t.id, t]));
  for (const fk of catalog.foreignKeys) {
    const table = byId.get(fk.table);
    const parent = byId.get(fk.references);
    if (fk.valid || fk.onPartition || seen.has(fk) || !table || !parent || !catalog.schemas.includes(table.schema))
      continue;
    const e: ExpectedForeignKey = {
      kind: 'foreign-key',
      table,
      columns: fk.columns,
      parent,
      parentColumns: fk.refColumns,
      source: 'catalog',
    };
    const ddl = foreignKeyDdl(db, e, 'invalid', fk, options.lockTimeout, names);
    verdicts.push({
      kind: 'foreign-key',
      table: table.id,
      columns: fk.columns,
      where: null,
      status: 'invalid',
      detail:
        notValidDetail(fk) +
        (fk.enforced ? ', while it already rejects new ones' : '') +
        (ddl.warnings.length ? `; ${ddl.warnings.join('; ')}` : ''),
      references: `${parent.id}(${fk.refColumns.join(', ')})`,
      violations: await violations(() => foreignKeyViolations(tx, e, fk)),
      ddl: ddl.statements,
      found: fk.name,
      source: 'catalog',
      warnings: ddl.warnings,
      fix: fixFor({ source: 'catalog', table, columns: fk.columns, refs: { table: parent, columns: fk.refColumns } }),
    });
  }
  return verdicts;
}
