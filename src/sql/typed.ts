import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { col, type Sql } from './build.js';

/**
 * A polymorphic or generic reference's type test: the row's type column holds `type` (a class
 * name, an alias, a content type id), the value bound as a parameter and cast to the column's own
 * type, so an index on the type column serves it.
 */
export function holdsType(table: Table, typeColumn: string, type: string, alias: string | null): Sql {
  const column = table.columns.find((c) => c.name === typeColumn);
  const cast = column ? sql`cast(${type} as ${sql.raw(column.type)})` : sql`${type}`;
  return sql`${col(alias, typeColumn)} = ${cast}`;
}
