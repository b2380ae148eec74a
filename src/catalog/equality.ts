import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import type { Equality, QualifiedName } from './types.js';

interface EqualityRow {
  ty: number;
  op_oid: number;
  op_schema: string;
  op_name: string;
  hash_schema: string | null;
  hash_name: string | null;
}

/**
 * Each type's default btree equality, as the server's type cache finds it for GROUP BY, DISTINCT,
 * record and array comparison: through domains to the base type, then the default btree operator
 * class for that type exactly, else for a type it is binary-coercible to (varchar → text), else
 * the polymorphic one (arrays, enums, ranges, composites); its strategy-3 operator. With it, the
 * hash function of the default hash operator class whose family holds that same operator — a hash
 * that agrees with the equality (citext's hashes case-folded text; numeric's 1.0 and 1.00 alike).
 * Types without a btree equality (json, point) are missing from the map.
 */
export async function loadEqualities(db: Db | Tx, typeOids: number[]): Promise<Map<number, Equality>> {
  const out = new Map<number, Equality>();
  const wanted = [...new Set(typeOids)];
  if (!wanted.length) return out;
  const { rows } = await sql<EqualityRow>`
    with recursive d(ty, base) as (
      select t.oid, t.oid
        from pg_catalog.pg_type t
       where t.oid = any(${wanted}::oid[])
       union all
      select d.ty, t.typbasetype
        from d
        join pg_catalog.pg_type t on t.oid = d.base
       where t.typtype = 'd'
    ),
    b as (
      select d.ty, d.base, bt.typtype, bt.typcategory
        from d
        join pg_catalog.pg_type bt on bt.oid = d.base
       where bt.typtype <> 'd'
    ),
    opc as (
      select distinct on (b.ty) b.ty, c.opcfamily, c.opcintype
        from b
        join pg_catalog.pg_opclass c on c.opcdefault
        join pg_catalog.pg_am am on am.oid = c.opcmethod and am.amname = 'btree'
        join pg_catalog.pg_type it on it.oid = c.opcintype
       where c.opcintype = b.base
          or exists (select 1
                       from pg_catalog.pg_cast k
                      where k.castsource = b.base and k.casttarget = c.opcintype and k.castmethod = 'b')
          or (it.typname = 'anyarray' and b.typcategory = 'A')
          or (it.typname = 'anyenum' and b.typtype = 'e')
          or (it.typname = 'anyrange' and b.typtype = 'r')
          or (it.typname = 'anymultirange' and b.typtype = 'm')
          or (it.typname = 'record' and b.typtype = 'c')
       order by b.ty, c.opcintype = b.base desc, it.typtype = 'p'
    )
    select opc.ty::int as ty, eq.oid::int as op_oid, eqn.nspname as op_schema, eq.oprname as op_name,
           h.nspname as hash_schema, h.proname as hash_name
      from opc
      join pg_catalog.pg_amop a
        on a.amopfamily = opc.opcfamily and a.amopstrategy = 3
       and a.amoplefttype = opc.opcintype and a.amoprighttype = opc.opcintype
      join pg_catalog.pg_operator eq on eq.oid = a.amopopr
      join pg_catalog.pg_namespace eqn on eqn.oid = eq.oprnamespace
      left join lateral (${hashOf(sql`eq.oid`)}) h on true`.execute(db);
  for (const r of rows) out.set(r.ty, toEquality(r, true));
  return out;
}

/** The hash function of a default hash operator class whose family holds operator `op` (strategy 1). */
export function hashOf(op: ReturnType<typeof sql>) {
  return sql`
    select pn.nspname, p.proname
      from pg_catalog.pg_amop ha
      join pg_catalog.pg_opclass hc
        on hc.opcfamily = ha.amopfamily and hc.opcdefault and hc.opcintype = ha.amoplefttype
      join pg_catalog.pg_am ham on ham.oid = hc.opcmethod and ham.amname = 'hash'
      join pg_catalog.pg_amproc hp
        on hp.amprocfamily = ha.amopfamily and hp.amprocnum = 1
       and hp.amproclefttype = ha.amoplefttype and hp.amprocrighttype = ha.amoprighttype
      join pg_catalog.pg_proc p on p.oid = hp.amproc
      join pg_catalog.pg_namespace pn on pn.oid = p.pronamespace
     where ha.amopopr = ${op} and ha.amopstrategy = 1
     limit 1`;
}

export function toEquality(
  r: Pick<EqualityRow, 'op_oid' | 'op_schema' | 'op_name' | 'hash_schema' | 'hash_name'>,
  groupable: boolean,
): Equality {
  const hash: QualifiedName | null = r.hash_schema && r.hash_name ? { schema: r.hash_schema, name: r.hash_name } : null;
  return { operator: { schema: r.op_schema, name: r.op_name }, operatorOid: r.op_oid, hash, groupable };
}
