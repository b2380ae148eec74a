import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { operatorEquality } from './equality.js';
import type { ForeignKey } from './types.js';

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
/**
 * Every foreign key between user tables, once: the constraint on a partitioned table, not its
 * copies on the partitions (conparentid = 0). One that references a single partition directly is
 * kept: deleting from its partitioned parent would fire it (repair/references.ts follows it).
 */
export async function loadForeignKeys(db: Db | Tx, serverVersion: number): Promise<ForeignKey[]> {
  // NOT ENFORCED foreign keys exist from PostgreSQL 18 on (pg_constraint.conenforced).
  const enforced = serverVersion >= 180000 ? sql`con.conenforced` : sql`true`;
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

  return fks.rows.map((f) => ({
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
}
