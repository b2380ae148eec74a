import { sql, type RawBuilder } from 'kysely';
import type { Equality, QualifiedName, SoftDeleteMarker, Table } from '../catalog/types.js';
import type { KeyPart } from '../rules/types.js';
import type { SqlFragment } from './fragment.js';
import { currentShadows } from './shadow.js';

/** Building blocks for queries on user tables. Identifiers only ever come from the catalog. */

export type Sql = RawBuilder<unknown>;

/**
 * The table's own rows, for FROM, JOIN, UPDATE, DELETE, INSERT and LOCK: `ONLY` where old-style
 * inheritance children exist, whose rows a unique index or foreign key of this table never covers.
 * In a dry run's shadow scope (sql/shadow.ts), the table's copy in pg_temp.
 */
export function tableRef(table: Table): Sql {
  const shadow = currentShadows()?.tables.get(table.oid);
  if (shadow) return sql.id('pg_temp', shadow);
  return table.hasInheritors ? sql`only ${tableName(table)}` : tableName(table);
}

/**
 * The table's own rows as they are in the database, even in a dry run's shadow scope: for reading
 * rows the repair never writes, which its copies may hold only some of.
 */
export function liveTableRef(table: Table): Sql {
  return table.hasInheritors ? sql`only ${tableName(table)}` : tableName(table);
}

/** The table's name, where a name and not a row source is meant: DDL, LIKE, REFERENCES, casts. */
export function tableName(table: Pick<Table, 'schema' | 'name'>): Sql {
  return sql.id(table.schema, table.name);
}

export function col(alias: string | null, column: string): Sql {
  return alias ? sql.id(alias, column) : sql.id(column);
}

/**
 * The only place user-written SQL enters a query: a fragment that passed `sqlFragment()` (one
 * expression, no statement separator or comment), wrapped in parentheses.
 */
export function fragment(f: SqlFragment): Sql {
  return sql`(${sql.raw(f.text)})`;
}

/** A key part as an expression; expressions are unqualified, so use them on a single-table FROM. */
export function keyExpr(part: KeyPart, alias: string | null): Sql {
  return part.kind === 'column' ? col(alias, part.column) : fragment(part.expr);
}

/**
 * A key part as grouped: text columns with a deterministic collation are compared COLLATE "C"
 * (byte equality: the very same groups, without the cost of the locale's comparison rules) —
 * unless an index leads with the column: grouping in the index's own collation lets the server
 * read the index instead of the table, which wins by far. Use it on both sides of a comparison,
 * or the collations conflict.
 */
export function groupKeyExpr(table: Table, part: KeyPart, alias: string | null): Sql {
  if (part.collation) return sql`${keyExpr(part, alias)} collate ${qualified(part.collation)}`;
  if (part.kind !== 'column') return keyExpr(part, alias);
  const column = table.columns.find((c) => c.name === part.column);
  const bytewise =
    column?.category === 'S' &&
    column.collatable &&
    column.deterministic &&
    !table.indexedLeading.includes(part.column);
  return bytewise ? sql`${col(alias, part.column)} collate "C"` : col(alias, part.column);
}

export function isDeleted(marker: SoftDeleteMarker, alias: string | null): Sql {
  return marker.kind === 'timestamp'
    ? sql`${col(alias, marker.column)} is not null`
    : sql`${col(alias, marker.column)} is true`;
}

export function isAlive(marker: SoftDeleteMarker, alias: string | null): Sql {
  return marker.kind === 'timestamp'
    ? sql`${col(alias, marker.column)} is null`
    : sql`${col(alias, marker.column)} is not true`;
}

export function and(terms: Sql[]): Sql {
  return terms.length ? sql.join(terms, sql` and `) : sql`true`;
}

/**
 * How a row is named in samples and plans: its primary key (a JSON array when composite), or
 * its ctid when the table has none (prefixed by the partition: ctids repeat across partitions).
 */
export function rowId(table: Table, alias: string | null): Sql {
  const pk = table.primaryKey;
  if (!pk) {
    const ctid = sql`${col(alias, 'ctid')}::text`;
    return table.partitioned ? sql`${col(alias, 'tableoid')}::regclass::text || ':' || ${ctid}` : ctid;
  }
  if (pk.length === 1) return col(alias, pk[0]!);
  return sql`json_build_array(${sql.join(pk.map((c) => col(alias, c)))})`;
}

/**
 * How to sort rowId() values `x` (collected unordered into an array) the way rowIdOrder() sorts
 * the rows: each part of a composite key back in its own type, a ctid as a tid.
 */
export function rowIdSortKey(table: Table, x: Sql): Sql {
  const pk = table.primaryKey;
  if (!pk) {
    if (!table.partitioned) return sql`${x}::tid`;
    return sql`substring(${x} from '^(.*):')::regclass::oid, substring(${x} from ':([^:]*)$')::tid`;
  }
  if (pk.length === 1) return x;
  return sql.join(
    pk.map((c, i) => sql`(${x}->>${sql.lit(i)})::${sql.raw(table.columns.find((col) => col.name === c)!.type)}`),
  );
}

/** `"schema"."name"`: a collation, function or operator class read from the catalog. */
export function qualified(q: QualifiedName): Sql {
  return sql.id(q.schema, q.name);
}

const OPERATOR_NAME = /^[~!@#%^&|`?+\-*/<>=]+$/;

/**
 * `OPERATOR(schema.op)`: the key part's own equality, whatever the search_path (pg_catalog's `=`
 * where none is known). An operator name is symbols only; anything else never reaches the SQL.
 */
export function equalityOperator(e: Equality | null | undefined): Sql {
  const op = e && OPERATOR_NAME.test(e.operator.name) ? e.operator : { schema: 'pg_catalog', name: '=' };
  return sql`operator(${sql.id(op.schema)}.${sql.raw(op.name)})`;
}

/**
 * `l = r` under the part's equality; with NULLS NOT DISTINCT two NULLs are equal too (IS NOT
 * DISTINCT FROM would resolve `=` through the search_path, so it is spelled out).
 */
export function equals(l: Sql, r: Sql, e: Equality | null | undefined, nullsNotDistinct: boolean): Sql {
  const op = sql`${asOperand(l, e)} ${equalityOperator(e)} ${asOperand(r, e)}`;
  return nullsNotDistinct ? sql`coalesce(${op}, ${l} is null and ${r} is null)` : op;
}

/** A value as its equality's operator takes it: a domain's cast to its base type (Equality.operand). */
export function asOperand(value: Sql, e: Equality | null | undefined): Sql {
  return e?.operand ? sql`(${value})::${qualified(e.operand)}` : value;
}

/** How a key part compares: its own equality, else its column type's (catalog), else null. */
export function partEquality(table: Table, part: KeyPart): Equality | null {
  if (part.equality !== undefined) return part.equality;
  return part.kind === 'column' ? (table.columns.find((c) => c.name === part.column)?.equality ?? null) : null;
}

/** Equality of two key tuples of `table`'s key `parts`, each part under its own equality. */
export function keysEqual(table: Table, parts: KeyPart[], left: Sql[], right: Sql[], nullsNotDistinct: boolean): Sql {
  return and(left.map((l, i) => equals(l, right[i]!, partEquality(table, parts[i]!), nullsNotDistinct)));
}

/** Columns that order rows by their id (json has no ordering, so composite keys sort by parts). */
export function rowIdOrder(table: Table, alias: string | null): Sql {
  const pk = table.primaryKey;
  if (!pk) return sql`${col(alias, 'tableoid')}, ${col(alias, 'ctid')}`;
  return sql.join(pk.map((c) => col(alias, c)));
}

/** Internal column names for key parts, chosen so they cannot collide with user columns. */
export function keyAliases(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `__rd_k${i}`);
}

/**
 * The fixed 1-in-256 hash bucket of keys that samples come from: ids can then be collected in the
 * one aggregate pass with bounded memory, and the same keys are sampled run after run. It runs once
 * per row, so the bucket must be a property of the group, not of the row: each part is hashed by
 * the hash function that agrees with its equality (catalog/equality.ts), in the part's collation —
 * `Bob` and `bob` under a case-insensitive collation or citext, `1.0` and `1.00`, land together.
 * A support function the server binds through the operator family only (timestamp_hash for
 * timestamptz, hashvarlena for bytea) is reached through hash_array, which looks it up by the type.
 * Null when a part has no such hash: samples then come from the first groups in key order.
 */
export function sampleBucket(parts: { ref: Sql; equality: Equality | null }[]): Sql | null {
  if (!parts.every((p) => p.equality?.hash && p.equality.groupable)) return null;
  const hashes = parts.map(({ ref, equality }, i) => {
    const { fn, direct } = equality!.hash!;
    const value = asOperand(ref, equality);
    const h = direct ? sql`${qualified(fn)}(${value})` : sql`pg_catalog.hash_array(array[${value}])`;
    return i === 0 ? h : sql`(${h} << ${sql.lit(i)})`;
  });
  return sql`(${sql.join(hashes, sql` # `)}) & 255 = 0`;
}
