import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { loadEqualities, operatorEquality } from './equality.js';
import { groupBy } from './group-by.js';
import { qualifiedText, type Equality, type IndexPart, type UniqueIndex } from './types.js';

interface IdxRow {
  table_oid: number;
  index_oid: number;
  name: string;
  constraint: string | null;
  primary: boolean;
  valid: boolean;
  columns: (string | null)[];
  parts: string[];
  include: string[];
  predicate: string | null;
  nnd: boolean;
  definition: string;
  /** On a partition: the rows it holds (its partition constraint, its ancestors' bounds included). */
  scope: string | null;
  /** Attached to an index of the partition's parent (which then covers these rows already). */
  inherited: boolean;
}
/**
 * The tables' (and partitions') unique indexes by table oid, valid or not, each key part as a column name and as the
 * server prints it, with INCLUDE columns, predicate, NULL semantics, the constraint that owns it and
 * how each part compares (indexParts).
 */
/** A unique index, with where it sits when on a partition (partitionIndexes). */
export interface LoadedIndex extends UniqueIndex {
  scope: string | null;
  inherited: boolean;
}

export async function loadUniqueIndexes(
  db: Db | Tx,
  oids: number[],
  serverVersion: number,
  equalities: Map<number, Equality>,
): Promise<Map<number, LoadedIndex[]>> {
  // NULLS NOT DISTINCT exists from PostgreSQL 15 on; before, every unique index treats NULLs as distinct.
  const nnd = serverVersion >= 150000 ? sql`i.indnullsnotdistinct` : sql`false`;
  // A key column's name, or NULL where the index has an expression in that position (indkey = 0).
  const keyColumn = sql`case when i.indkey[k - 1] = 0 then null else
                   (select attname from pg_attribute where attrelid = i.indrelid and attnum = i.indkey[k - 1]) end`;
  const indexdef = sql`pg_get_indexdef(i.indexrelid, k, true)`;
  const idx = await sql<IdxRow>`
    select i.indrelid::int as table_oid, i.indexrelid::int as index_oid, ic.relname as name,
           con.conname as constraint,
           i.indisprimary as primary, i.indisvalid as valid,
           array(select ${keyColumn} from generate_series(1, i.indnkeyatts) k order by k)::text[] as columns,
           array(select ${indexdef} from generate_series(1, i.indnkeyatts) k order by k)::text[] as parts,
           array(select ${indexdef} from generate_series(i.indnkeyatts + 1, i.indnatts) k order by k)::text[]
             as include,
           pg_get_expr(i.indpred, i.indrelid, true) as predicate, ${nnd} as nnd,
           pg_get_indexdef(i.indexrelid) as definition,
           case when ic2.relispartition then pg_get_partition_constraintdef(i.indrelid) end as scope,
           exists (select 1 from pg_inherits h where h.inhrelid = i.indexrelid) as inherited
      from pg_index i
      join pg_class ic2 on ic2.oid = i.indrelid
      join pg_class ic on ic.oid = i.indexrelid
      left join pg_constraint con
        on con.conindid = i.indexrelid and con.contype in ('p', 'u') and con.conrelid = i.indrelid
     where i.indisunique and i.indrelid = any(${oids}::oid[])
     order by ic.relname`.execute(db);
  const partInfo = await indexParts(
    db,
    idx.rows.map((i) => i.index_oid),
    equalities,
  );
  const indexesOf = new Map<number, LoadedIndex[]>();
  for (const [oid, rows] of groupBy(idx.rows, (i) => i.table_oid))
    indexesOf.set(
      oid,
      rows.map((i) => ({
        scope: i.scope,
        inherited: i.inherited,
        name: i.name,
        constraint: i.constraint,
        primary: i.primary,
        valid: i.valid,
        columns: i.columns,
        parts: i.parts,
        partInfo: partInfo.get(i.index_oid) ?? [],
        elements: i.parts.map((p, n) => indexElement(p, partInfo.get(i.index_oid)?.[n])),
        include: i.include,
        predicate: i.predicate,
        nullsNotDistinct: i.nnd,
        definition: i.definition,
      })),
    );
  return indexesOf;
}

interface IndexPartRow {
  index_oid: number;
  coll_schema: string | null;
  coll_name: string | null;
  opc_schema: string | null;
  opc_name: string | null;
  op_oid: number | null;
  op_schema: string | null;
  op_name: string | null;
  key_type: number;
}

/**
 * Each key part of these indexes as the index compares it: its collation where the index chose
 * one (indcollation differs from the column's own; for an expression, anything but the database
 * default), its operator class where not the default, and that class's equality operator
 * (btree strategy 3). A part whose equality is not its type's default cannot be grouped by.
 */
async function indexParts(
  db: Db | Tx,
  indexOids: number[],
  equalities: Map<number, Equality>,
): Promise<Map<number, IndexPart[]>> {
  const out = new Map<number, IndexPart[]>();
  if (!indexOids.length) return out;
  const { rows } = await sql<IndexPartRow>`
    select i.indexrelid::int as index_oid,
           case when i.indcollation[k.n - 1] not in (0, coalesce(a.attcollation, 100)) then cn.nspname end
             as coll_schema,
           co.collname as coll_name,
           case when not opc.opcdefault then ocn.nspname end as opc_schema, opc.opcname as opc_name,
           eq.oid::int as op_oid, eqn.nspname as op_schema, eq.oprname as op_name,
           coalesce(a.atttypid, ia.atttypid)::int as key_type
      from pg_catalog.pg_index i
     cross join lateral pg_catalog.generate_series(1, i.indnkeyatts) as k(n)
      left join pg_catalog.pg_attribute a
        on i.indkey[k.n - 1] <> 0 and a.attrelid = i.indrelid and a.attnum = i.indkey[k.n - 1]
      join pg_catalog.pg_attribute ia on ia.attrelid = i.indexrelid and ia.attnum = k.n
      left join pg_catalog.pg_collation co on co.oid = i.indcollation[k.n - 1]
      left join pg_catalog.pg_namespace cn on cn.oid = co.collnamespace
      join pg_catalog.pg_opclass opc on opc.oid = i.indclass[k.n - 1]
      join pg_catalog.pg_namespace ocn on ocn.oid = opc.opcnamespace
      left join pg_catalog.pg_amop am
        on am.amopfamily = opc.opcfamily and am.amopstrategy = 3
       and am.amoplefttype = opc.opcintype and am.amoprighttype = opc.opcintype
       and am.amopmethod = (select oid from pg_catalog.pg_am where amname = 'btree')
      left join pg_catalog.pg_operator eq on eq.oid = am.amopopr
      left join pg_catalog.pg_namespace eqn on eqn.oid = eq.oprnamespace
     where i.indexrelid = any(${indexOids}::oid[])
     order by i.indexrelid, k.n`.execute(db);
  // Key types not among the columns' (expressions): their default equality, to compare with.
  const more = await loadEqualities(
    db,
    rows.map((r) => r.key_type).filter((t) => !equalities.has(t)),
  );
  for (const r of rows) {
    const natural = equalities.get(r.key_type) ?? more.get(r.key_type);
    // The type's own equality: its hash and operand too. Another operator class's: compared by its
    // operator, never hashed (GROUP BY cannot group by it, so samples do not come from a bucket).
    const own = natural && natural.operatorOid === r.op_oid;
    const part: IndexPart = {
      collation: r.coll_schema && r.coll_name ? { schema: r.coll_schema, name: r.coll_name } : null,
      opclass: r.opc_schema && r.opc_name ? { schema: r.opc_schema, name: r.opc_name } : null,
      equality: own
        ? natural
        : r.op_oid && r.op_schema && r.op_name
          ? operatorEquality({ op_oid: r.op_oid, op_schema: r.op_schema, op_name: r.op_name }, false)
          : null,
    };
    const list = out.get(r.index_oid);
    if (list) list.push(part);
    else out.set(r.index_oid, [part]);
  }
  return out;
}

/** An index element for DDL: the part as pg_get_indexdef prints it, with the index's own COLLATE and class. */
function indexElement(part: string, info: IndexPart | undefined): string {
  const collate = info?.collation ? ` COLLATE ${qualifiedText(info.collation)}` : '';
  const opclass = info?.opclass ? ` ${qualifiedText(info.opclass)}` : '';
  return `${part}${collate}${opclass}`;
}
