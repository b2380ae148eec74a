import { sql } from 'kysely';
import type { Column, Table } from '../catalog/types.js';
import { equalityOperator, type Sql } from '../sql/build.js';

/**
 * The columns compared between a group's copies: all but the primary key, the creation time and
 * generated columns (which follow from the others).
 */
export function comparedColumns(table: Table, createdAt: string): Column[] {
  const pk = table.primaryKey ?? [];
  return table.columns.filter((c) => !pk.includes(c.name) && c.name !== createdAt && !c.generated);
}

/**
 * `a` IS DISTINCT FROM `b` under the column type's own equality (numeric 1.0 and 1.00 are equal,
 * citext compares case-folded), spelled with the catalog's operator so no search_path changes
 * it. A type without an equality (json, point, xml) is compared by its text.
 */
export function differs(column: Column, a: Sql, b: Sql): Sql {
  const [l, r, op] = column.equality
    ? [a, b, equalityOperator(column.equality)]
    : [sql`(${a})::text collate "C"`, sql`(${b})::text collate "C"`, equalityOperator(null)];
  return sql`(case when ${a} is null or ${b} is null then (${a} is null) <> (${b} is null)
                   else not (${l} ${op} ${r}) end)`;
}
