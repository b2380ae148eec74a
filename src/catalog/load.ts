import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { RowdoctorError } from '../errors.js';
import { weighReferences } from '../rules/reference-evidence.js';
import { loadContentTypes, weighTypedReferences } from '../rules/typed-evidence.js';
import { loadEqualities, operatorEquality } from './equality.js';
import { markerFor, weighMarkers, type SoftDeleteSettings } from './soft-delete.js';
import {
  qualifiedText,
  tableId,
  type Catalog,
  type Column,
  type Equality,
  type ForeignKey,
  type IndexPart,
  type Table,
  type UniqueIndex,
} from './types.js';

/** Schemas that are never user data (namespace `n`). rowdoctor_backup holds our own backups. */
const SYSTEM_SCHEMA = sql`(
       n.nspname in ('pg_catalog', 'information_schema', 'pg_toast', 'rowdoctor_backup')
    or n.nspname like 'pg\\_temp\\_%'
    or n.nspname like 'pg\\_toast\\_temp\\_%')`;

interface RelRow {
  oid: number;
  schema: string;
  name: string;
  kind: string;
  is_partition: boolean;
  root: string | null;
  estimated_rows: number;
  pages: number;
  has_inheritors: boolean;
}
interface ColRow {
  oid: number;
  name: string;
  type_oid: number;
  type: string;
  base_type: string;
  category: string;
  not_null: boolean;
  generated: boolean;
  deterministic: boolean;
  collatable: boolean;
}
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
interface FkRow {
  name: string;
  table: string;
  columns: string[];
  references: string;
  ref_columns: string[];
  valid: boolean;
  enforced: boolean;
  on_delete: string;
  on_update: string;
  on_partition: boolean;
  match_full: boolean;
  pairs: {
    op_oid: number;
    op_schema: string;
    op_name: string;
    coll_schema: string | null;
    coll_name: string | null;
  }[];
}
interface PartKeyRow {
  oid: number;
  columns: (string | null)[];
}

/**
 * Read one consistent snapshot of the catalog. `schemas` limits what is checked; tables of every
 * user schema are still loaded, because a foreign key may cross schemas.
 */
export async function loadCatalog(
  db: Db | Tx,
  options: { schemas: string[] | null; softDelete: SoftDeleteSettings },
): Promise<Catalog> {
  const version = await sql<{ v: number }>`select current_setting('server_version_num')::int as v`.execute(db);
  const serverVersion = version.rows[0]?.v ?? 0;

  // Every user table, plain or partitioned, with a partition's root (its topmost ancestor) and the
  // planner's size estimates (never negative: -1 means "never analyzed").
  const rels = await sql<RelRow>`
    select c.oid::int as oid, n.nspname as schema, c.relname as name, c.relkind as kind,
           c.relispartition as is_partition,
           (select rn.nspname || '.' || r.relname
              from pg_partition_ancestors(c.oid) a(relid)
              join pg_class r on r.oid = a.relid
              join pg_namespace rn on rn.oid = r.relnamespace
             where not r.relispartition
             limit 1) as root,
           greatest(c.reltuples, 0)::float8 as estimated_rows, c.relpages::int as pages,
           exists (select 1
                     from pg_inherits i
                     join pg_class ch on ch.oid = i.inhrelid
                    where i.inhparent = c.oid and not ch.relispartition) as has_inheritors
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'p') and not ${SYSTEM_SCHEMA}
     order by n.nspname, c.relname`.execute(db);

  // Every user schema, empty ones included: --schema names one of them or is an error.
  const allSchemas = await sql<{ name: string }>`
    select n.nspname as name
      from pg_namespace n
     where not ${SYSTEM_SCHEMA}
     order by 1`.execute(db);
  const schemas = options.schemas ?? allSchemas.rows.map((r) => r.name);
  for (const s of schemas) {
    if (!allSchemas.rows.some((r) => r.name === s)) {
      const near = allSchemas.rows.find((r) => r.name.toLowerCase() === s.toLowerCase());
      throw new RowdoctorError(`Schema "${s}" does not exist in this database.`, {
        hint: near
          ? `Names are exact catalog names: did you mean "${near.name}"?`
          : `Schemas here: ${allSchemas.rows.map((r) => r.name).join(', ') || '(none)'}.`,
      });
    }
  }

  const oids = rels.rows.map((r) => r.oid);
  // The tables' live columns in order; a domain's base type decides how its values hash and compare.
  const cols = await sql<ColRow>`
    select a.attrelid::int as oid, a.attname as name, a.atttypid::int as type_oid,
           format_type(a.atttypid, a.atttypmod) as type,
           coalesce(bt.typname, t.typname) as base_type,
           coalesce(bt.typcategory, t.typcategory) as category,
           a.attnotnull as not_null, a.attgenerated <> '' as generated,
           coalesce(co.collisdeterministic, true) as deterministic, a.attcollation <> 0 as collatable
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      left join pg_collation co on co.oid = a.attcollation
      left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
     where a.attrelid = any(${oids}::oid[]) and a.attnum > 0 and not a.attisdropped
     order by a.attrelid, a.attnum`.execute(db);

  // NULLS NOT DISTINCT exists from PostgreSQL 15 on; before, every unique index treats NULLs as distinct.
  const nnd = serverVersion >= 150000 ? sql`i.indnullsnotdistinct` : sql`false`;
  // A key column's name, or NULL where the index has an expression in that position (indkey = 0).
  const keyColumn = sql`case when i.indkey[k - 1] = 0 then null else
                   (select attname from pg_attribute where attrelid = i.indrelid and attnum = i.indkey[k - 1]) end`;
  const indexdef = sql`pg_get_indexdef(i.indexrelid, k, true)`;
  // The tables' (and partitions') unique indexes, valid or not, each key part as a column name and as the server
  // prints it, with INCLUDE columns, predicate, NULL semantics and the constraint that owns it.
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

  const equalities = await loadEqualities(db, [...cols.rows.map((c) => c.type_oid)]);
  const partInfo = await indexParts(
    db,
    idx.rows.map((i) => i.index_oid),
    equalities,
  );

  // NOT ENFORCED foreign keys exist from PostgreSQL 18 on (pg_constraint.conenforced).
  const enforced = serverVersion >= 180000 ? sql`con.conenforced` : sql`true`;
  // Every foreign key between user tables, once: the constraint on a partitioned table, not its
  // copies on the partitions (conparentid = 0). One that references a single partition directly is
  // kept: deleting from its partitioned parent would fire it (repair/references.ts follows it).
  const fks = await sql<FkRow>`
    select con.conname as name, cn.nspname || '.' || c.relname as table,
           array(select a.attname
                   from unnest(con.conkey) with ordinality k(n, o)
                   join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n
                  order by k.o)::text[] as columns,
           pn.nspname || '.' || p.relname as references,
           array(select a.attname
                   from unnest(con.confkey) with ordinality k(n, o)
                   join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n
                  order by k.o)::text[] as ref_columns,
           con.convalidated as valid, ${enforced} as enforced,
           con.confdeltype as on_delete, con.confupdtype as on_update,
           c.relispartition as on_partition,
           con.confmatchtype = 'f' as match_full,
           (select json_agg(json_build_object('op_oid', o.oid, 'op_schema', opn.nspname, 'op_name', o.oprname,
                                              'coll_schema', cln.nspname, 'coll_name', cl.collname)
                            order by k.o)
              from unnest(con.conpfeqop, con.confkey) with ordinality k(op, n, o)
              join pg_operator o on o.oid = k.op
              join pg_namespace opn on opn.oid = o.oprnamespace
              join pg_attribute pa on pa.attrelid = con.confrelid and pa.attnum = k.n
              left join pg_collation cl on cl.oid = pa.attcollation
              left join pg_namespace cln on cln.oid = cl.collnamespace) as pairs
      from pg_constraint con
      join pg_class c on c.oid = con.conrelid
      join pg_namespace cn on cn.oid = c.relnamespace
      join pg_class p on p.oid = con.confrelid
      join pg_namespace pn on pn.oid = p.relnamespace
     where con.contype = 'f' and con.conparentid = 0
       and not (cn.nspname in ('pg_catalog', 'information_schema', 'rowdoctor_backup'))
     order by 2, 1`.execute(db);

  // Columns that lead a valid, non-partial index: looking rows up by them is cheap.
  const leading = await sql<{ oid: number; cols: string[] }>`
    select i.indrelid::int as oid, array_agg(distinct a.attname)::text[] as cols
      from pg_index i
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
     where i.indisvalid and i.indpred is null and i.indrelid = any(${oids}::oid[])
     group by 1`.execute(db);

  // A partitioned table's partition key columns (NULL for an expression): a unique index on it
  // must include them all.
  const partColumn = sql`case when pt.partattrs[k] = 0 then null else
                   (select attname from pg_attribute where attrelid = pt.partrelid and attnum = pt.partattrs[k]) end`;
  const partKeys = await sql<PartKeyRow>`
    select pt.partrelid::int as oid,
           array(select ${partColumn} from generate_subscripts(pt.partattrs, 1) k order by k)::text[] as columns
      from pg_partitioned_table pt
     where pt.partrelid = any(${oids}::oid[])`.execute(db);

  const colsByOid = groupBy(cols.rows, (c) => c.oid);
  const idxByOid = groupBy(idx.rows, (i) => i.table_oid);
  const tables: Table[] = [];
  const partitionRoot = new Map<string, string>();
  const partitionColumns = new Map<string, Column[]>();
  for (const r of rels.rows) {
    const id = tableId(r.schema, r.name);
    const columns: Column[] = (colsByOid.get(r.oid) ?? []).map((c) => ({
      name: c.name,
      type: c.type,
      baseType: c.base_type,
      category: c.category,
      notNull: c.not_null,
      generated: c.generated,
      deterministic: c.deterministic,
      collatable: c.collatable,
      equality: equalities.get(c.type_oid) ?? null,
    }));
    if (r.is_partition) {
      if (r.root) partitionRoot.set(id, r.root);
      partitionColumns.set(id, columns);
      continue;
    }
    const uniqueIndexes = (idxByOid.get(r.oid) ?? []).map((i) => uniqueIndex(i, partInfo));
    const pk = uniqueIndexes.find((i) => i.primary);
    tables.push({
      oid: r.oid,
      schema: r.schema,
      name: r.name,
      id,
      partitioned: r.kind === 'p',
      hasInheritors: r.has_inheritors,
      columns,
      primaryKey: pk && pk.columns.every((c) => c !== null) ? pk.columns : null,
      uniqueIndexes,
      partitionUniqueIndexes: [],
      partitionKey: partKeys.rows.find((p) => p.oid === r.oid)?.columns ?? [],
      softDelete: markerFor(id, columns, options.softDelete),
      estimatedRows: r.estimated_rows,
      indexedLeading: leading.rows.find((l) => l.oid === r.oid)?.cols ?? [],
      pages: r.pages,
    });
  }
  // A unique index defined on a partition (at any level), not attached to one of its parent's: it
  // holds for that partition's rows only — the root's rows where the partition constraint holds.
  const byId = new Map(tables.map((t) => [t.id, t]));
  for (const r of rels.rows.filter((x) => x.is_partition && x.root)) {
    const root = byId.get(r.root!);
    for (const i of (idxByOid.get(r.oid) ?? []).filter((x) => !x.inherited && x.scope)) {
      const index = uniqueIndex(i, partInfo);
      const predicate = index.predicate ? `(${i.scope}) AND (${index.predicate})` : i.scope!;
      root?.partitionUniqueIndexes.push({ ...index, predicate, partition: tableId(r.schema, r.name) });
    }
  }
  const foreignKeys: ForeignKey[] = fks.rows.map((f) => ({
    name: f.name,
    table: f.table,
    columns: f.columns,
    references: f.references,
    refColumns: f.ref_columns,
    valid: f.valid,
    enforced: f.enforced,
    onDelete: f.on_delete,
    onUpdate: f.on_update,
    onPartition: f.on_partition,
    matchFull: f.match_full,
    pairs: (f.pairs ?? []).map((p) => ({
      equality: operatorEquality(p, true),
      collation: p.coll_schema && p.coll_name ? { schema: p.coll_schema, name: p.coll_name } : null,
    })),
  }));
  const catalog: Catalog = {
    serverVersion,
    schemas,
    tables,
    foreignKeys,
    partitionRoot,
    partitionColumns,
    assumptions: [],
    typedReferences: [],
    contentTypes: new Map(),
    warnings: [],
  };
  // Names only suggest: soft-delete markers and references are weighed against the data.
  catalog.assumptions.push(...(await weighMarkers(db, tables, options.softDelete)));
  catalog.assumptions.push(...(await weighReferences(db, catalog)));
  // Polymorphic and generic references: type values mapped by framework naming, weighed the same way.
  catalog.contentTypes = await loadContentTypes(db, catalog);
  const typed = await weighTypedReferences(db, catalog);
  catalog.typedReferences = typed.references;
  catalog.assumptions.push(...typed.assumptions);
  catalog.warnings = typed.warnings;
  return catalog;
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

function uniqueIndex(i: IdxRow, partInfo: Map<number, IndexPart[]>): UniqueIndex {
  return {
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
  };
}

/** An index element for DDL: the part as pg_get_indexdef prints it, with the index's own COLLATE and class. */
function indexElement(part: string, info: IndexPart | undefined): string {
  const collate = info?.collation ? ` COLLATE ${qualifiedText(info.collation)}` : '';
  const opclass = info?.opclass ? ` ${qualifiedText(info.opclass)}` : '';
  return `${part}${collate}${opclass}`;
}

function groupBy<T, K>(items: T[], key: (t: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}
