import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { and, col, tableRef, type Sql } from '../sql/build.js';
import { pkMatches } from '../repair/context.js';
import type { Reference } from '../repair/references.js';

/**
 * A LATERAL item: the row of `table` (as `alias`) whose primary key is `other`'s `${prefix}0…`,
 * looked up by its index (offset 0 keeps the planner from turning it into a join that reads the
 * whole table): what a plan reads per batch follows the batch's groups, not the table's size.
 */
export function rowByPk(table: Table, alias: string, other: string, prefix: string): Sql {
  const a = sql.id(alias);
  const byKey = pkMatches(table, alias, other, prefix);
  return sql`cross join lateral (select * from ${tableRef(table)} ${a} where ${byKey} offset 0) ${a}`;
}

/**
 * The rows of `ref.child` (as `x`) naming the parent row `parent`: looked up per parent where an
 * index leads with the reference's first column, else joined (one pass over the child).
 */
export function childrenOf(ref: Reference, parent: string): Sql {
  const points = and(ref.columns.map((c, i) => sql`${col('x', c)} = ${col(parent, ref.parentColumns[i]!)}`));
  return ref.child.indexedLeading.includes(ref.columns[0]!)
    ? sql`cross join lateral (select * from ${tableRef(ref.child)} x where ${points} offset 0) x`
    : sql`join ${tableRef(ref.child)} x on ${points}`;
}
