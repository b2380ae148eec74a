import { sql, type RawBuilder } from 'kysely';
import type { SoftDeleteMarker, Table } from '../catalog/types.js';
import type { KeyPart } from '../rules/types.js';
import type { SqlFragment } from './fragment.js';

/** Building blocks for queries on user tables. Identifiers only ever come from the catalog. */

export type Sql = RawBuilder<unknown>;

/**
 * The table's own rows, for FROM, JOIN, UPDATE, DELETE, INSERT and LOCK: `ONLY` where old-style
 * inheritance children exist, whose rows a unique index or foreign key of this table never covers.
 */
export function tableRef(table: Table): Sql {
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
  if (part.kind !== 'column') return keyExpr(part, alias);
  const column = table.columns.find((c) => c.name === part.column);
  const bytewise = column?.category === 'S' && column.deterministic && !table.indexedLeading.includes(part.column);
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

/** Equality of two key tuples; NULLS NOT DISTINCT keys compare with IS NOT DISTINCT FROM. */
export function keysEqual(left: Sql[], right: Sql[], nullsNotDistinct: boolean): Sql {
  return and(
    left.map((l, i) => (nullsNotDistinct ? sql`${l} is not distinct from ${right[i]!}` : sql`${l} = ${right[i]!}`)),
  );
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
 * per row, so each part is hashed by its type's own hash function where the type is known (no text
 * copy: ~1 s of a 10M-row scan here). A key with a NULL part is never in the bucket.
 */
export function sampleBucket(parts: { ref: Sql; baseType?: string | undefined }[]): Sql {
  const hashes = parts.map(({ ref, baseType }, i) => {
    const typed = TYPED_HASH[baseType ?? ''];
    const h = typed ? sql`${sql.raw(typed)}(${ref})` : sql`hashtext(${ref}::text)`;
    return i === 0 ? h : sql`(${h} << ${sql.lit(i)})`;
  });
  return sql`(${sql.join(hashes, sql` # `)}) & 255 = 0`;
}

const TYPED_HASH: Record<string, string> = {
  int2: 'hashint2',
  int4: 'hashint4',
  int8: 'hashint8',
  uuid: 'uuid_hash',
  text: 'hashtext',
  varchar: 'hashtext',
};

/** A key part's base type, where it is a plain column of `table`. */
export function partBaseType(table: Table, part: KeyPart): string | undefined {
  return part.kind === 'column' ? table.columns.find((c) => c.name === part.column)?.baseType : undefined;
}
