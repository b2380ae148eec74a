import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { col, type Sql } from '../sql/build.js';

/**
 * How a plan names a row: its primary key (the value, or an array for a composite key), or — for a
 * child table without one — the md5 of its text (taken under the canonical row-text settings).
 */
export function planId(table: Table, alias: string): Sql {
  const pk = table.primaryKey;
  if (!pk) return sql`to_json(md5(${sql.id(alias)}::text))`;
  return listedPlanId(
    table,
    pk.map((c) => col(alias, c)),
  );
}

/** The same for a row given by its primary key's values (`parts`, in key order). */
export function listedPlanId(table: Table, parts: Sql[]): Sql {
  const pk = table.primaryKey ?? [];
  const spelled = parts.map((p, i) => idPart(table, pk[i]!, p));
  return spelled.length === 1 ? spelled[0]! : sql`json_build_array(${sql.join(spelled)})`;
}

/**
 * One part of an id as JSON: a number where a double holds it exactly, else its text — an int8
 * past 2^53 (a snowflake id) read back as a number would name another row, and every group
 * holding one would look changed since the plan. plannedIdKey casts either back.
 */
function idPart(table: Table, column: string, value: Sql): Sql {
  const base = table.columns.find((c) => c.name === column)?.baseType;
  const exact = sql`${value} between -9007199254740991 and 9007199254740991`;
  if (base === 'int8') return sql`case when ${exact} then to_json(${value}) else to_json(${value}::text) end`;
  // A numeric: an integer in a double's exact range as a number (as JSON output spells it), else text.
  if (base === 'numeric')
    return sql`case when not (${exact}) then to_json(${value}::text)
                    when ${value} = trunc(${value}) then to_json(${value})
                    else to_json(${value}::text) end`;
  return sql`to_json(${value})`;
}

/** A row's id as a comparable jsonb: the same value for the row and for its id read from a plan. */
export function idKey(table: Table, alias: string): Sql {
  const pk = table.primaryKey;
  if (!pk) return sql`jsonb_build_array(md5(${sql.id(alias)}::text))`;
  return sql`jsonb_build_array(${sql.join(pk.map((c) => col(alias, c)))})`;
}

/** The same for a row listed by primary key in a work table's columns `${prefix}0…`. */
export function listedIdKey(table: Table, alias: string, prefix: string): Sql {
  return sql`jsonb_build_array(${sql.join((table.primaryKey ?? ['ctid']).map((_, i) => col(alias, `${prefix}${i}`)))})`;
}

/**
 * An id read from a plan (the jsonb `id`) as idKey spells it: each part cast to its column's type,
 * so 42 and "42" (an int8 the JSON document had to write as a string) are the same key.
 */
export function plannedIdKey(table: Table, id: Sql): Sql {
  const pk = table.primaryKey;
  if (!pk) return sql`jsonb_build_array(${id} #>> '{}')`;
  const part = (i: number) => (pk.length === 1 ? sql`${id} #>> '{}'` : sql`${id} ->> ${i}`);
  return sql`jsonb_build_array(${sql.join(pk.map((c, i) => sql`(${part(i)})::${sql.raw(columnType(table, c))}`))})`;
}

/** The column's type as format_type() prints it (from the catalog). */
function columnType(table: Table, column: string): string {
  return table.columns.find((c) => c.name === column)?.type ?? 'text';
}
