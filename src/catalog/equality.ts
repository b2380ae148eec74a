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
  hash_direct: boolean | null;
  base_schema: string | null;
  base_name: string | null;
}

/**
 * Each type's default btree equality, as the server's type cache finds it for GROUP BY, DISTINCT,
 * record and array comparison: through domains to the base type, then the default btree operator
 * class for that type exactly, else for a type it is implicitly binary-coercible to (varchar → text;
 * not xml, whose cast to text is for assignment only), else the polymorphic one (arrays, enums,
 * ranges, multiranges, composites); its strategy-3 operator. Types without one (json, point, xml)
 * are missing from the map.
 *
 * With it, the hash that agrees with that equality (citext's hashes case-folded text; numeric's 1.0
 * and 1.00 alike): the support function of the default hash operator class whose family holds that
 * same operator. It is known only when every type inside the value has one too, as the server's
 * type cache requires at run time (money[] or a composite holding money has none: hash_array
 * raises 42883), composites only from PostgreSQL 14 (hash_record), and no domain over a range or
 * multirange inside a container (the type cache finds no hash for those).
 */
export async function loadEqualities(db: Db | Tx, typeOids: number[]): Promise<Map<number, Equality>> {
  const out = new Map<number, Equality>();
  const wanted = [...new Set(typeOids)];
  if (!wanted.length) return out;
  // pg_range.rngmultitypid exists from PostgreSQL 14 on; read through to_jsonb so 13 reads null.
  const { rows } = await sql<EqualityRow>`
    with recursive parts(root, ty, nested) as (
      select t.oid, t.oid, false
        from pg_catalog.pg_type t
       where t.oid = any(${wanted}::oid[])
       union
      select p.root, c.ty, p.nested or pt.typtype <> 'd'
        from parts p
        join pg_catalog.pg_type pt on pt.oid = p.ty
       cross join lateral (
              select pt.typbasetype as ty
               where pt.typtype = 'd'
               union all
              select e.oid
                from pg_catalog.pg_type e
               where e.oid = pt.typelem and e.typarray = pt.oid
               union all
              select r.rngsubtype
                from pg_catalog.pg_range r
               where r.rngtypid = pt.oid
               union all
              select r.rngtypid
                from pg_catalog.pg_range r
               where (pg_catalog.to_jsonb(r) ->> 'rngmultitypid')::oid = pt.oid
               union all
              select a.atttypid
                from pg_catalog.pg_attribute a
               where a.attrelid = pt.typrelid and pt.typtype = 'c' and a.attnum > 0 and not a.attisdropped
             ) c
    ),
    d(ty, base) as (
      select distinct p.ty, p.ty
        from parts p
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
      select distinct on (b.ty) b.ty, b.base, c.opcfamily, c.opcintype
        from b
        join pg_catalog.pg_opclass c on c.opcdefault
        join pg_catalog.pg_am am on am.oid = c.opcmethod and am.amname = 'btree'
        join pg_catalog.pg_type it on it.oid = c.opcintype
       where c.opcintype = b.base
          or exists (select 1
                       from pg_catalog.pg_cast k
                      where k.castsource = b.base and k.casttarget = c.opcintype
                        and k.castmethod = 'b' and k.castcontext = 'i')
          or (it.typname = 'anyarray' and b.typcategory = 'A')
          or (it.typname = 'anyenum' and b.typtype = 'e')
          or (it.typname = 'anyrange' and b.typtype = 'r')
          or (it.typname = 'anymultirange' and b.typtype = 'm')
          or (it.typname = 'record' and b.typtype = 'c')
       order by b.ty, c.opcintype = b.base desc, it.typtype = 'p'
    ),
    eqs as (
      select opc.ty, opc.base, eq.oid as op_oid, eqn.nspname as op_schema, eq.oprname as op_name,
             h.nspname as hash_schema, h.proname as hash_name, h.direct as hash_direct
        from opc
        join pg_catalog.pg_amop a
          on a.amopfamily = opc.opcfamily and a.amopstrategy = 3
         and a.amoplefttype = opc.opcintype and a.amoprighttype = opc.opcintype
        join pg_catalog.pg_operator eq on eq.oid = a.amopopr
        join pg_catalog.pg_namespace eqn on eqn.oid = eq.oprnamespace
        left join lateral (${hashOf(sql`eq.oid`, sql`opc.base`)}) h on true
    )
    select e.ty::int as ty, e.op_oid::int as op_oid, e.op_schema, e.op_name,
           case when whole.hashable then e.hash_schema end as hash_schema,
           case when whole.hashable then e.hash_name end as hash_name,
           e.hash_direct,
           case when e.base <> e.ty and bt.typtype = 'e' then btn.nspname end as base_schema,
           case when e.base <> e.ty and bt.typtype = 'e' then bt.typname end as base_name
      from eqs e
      join pg_catalog.pg_type bt on bt.oid = e.base
      join pg_catalog.pg_namespace btn on btn.oid = bt.typnamespace
     cross join lateral (
            select pg_catalog.bool_and(x.hash_name is not null and not (p.nested and dt.typtype = 'd'
                                                                        and dbt.typtype in ('r', 'm')))
                     as hashable
              from parts p
              join pg_catalog.pg_type dt on dt.oid = p.ty
              left join pg_catalog.pg_type dbt on dbt.oid = dt.typbasetype
              left join eqs x on x.ty = p.ty
             where p.root = e.ty
           ) whole
     where e.ty = any(${wanted}::oid[])`.execute(db);
  for (const r of rows) out.set(r.ty, toEquality(r));
  return out;
}

/**
 * The hash function of a default hash operator class whose family holds operator `op` (strategy 1),
 * and whether a call by name binds it to a value of `type` (a domain's base type): hashint4(int4),
 * hash_array(anyarray), hashtext(text) for varchar do; timestamp_hash(timestamp) for timestamptz,
 * hashint4(int4) for date, hashchar("char") for boolean and hashvarlena(internal) for bytea do not
 * (the operator family binds them, not their signature). Those are called through hash_array over
 * a one-element array, whose element hash the server looks up itself, so a type without an array
 * type gets no hash.
 */
function hashOf(op: ReturnType<typeof sql>, type: ReturnType<typeof sql>) {
  return sql`
    select pn.nspname, p.proname, bind.direct
      from pg_catalog.pg_amop ha
      join pg_catalog.pg_opclass hc
        on hc.opcfamily = ha.amopfamily and hc.opcdefault and hc.opcintype = ha.amoplefttype
      join pg_catalog.pg_am ham on ham.oid = hc.opcmethod and ham.amname = 'hash'
      join pg_catalog.pg_amproc hp
        on hp.amprocfamily = ha.amopfamily and hp.amprocnum = 1
       and hp.amproclefttype = ha.amoplefttype and hp.amprocrighttype = ha.amoprighttype
      join pg_catalog.pg_proc p on p.oid = hp.amproc
      join pg_catalog.pg_namespace pn on pn.oid = p.pronamespace
      join pg_catalog.pg_type arg on arg.oid = p.proargtypes[0]
      join pg_catalog.pg_type vt on vt.oid = ${type}
     cross join lateral (
            select p.proargtypes[0] = vt.oid
                or (arg.typtype = 'p' and arg.typname <> 'internal')
                or exists (select 1
                             from pg_catalog.pg_cast k
                            where k.castsource = vt.oid and k.casttarget = arg.oid
                              and k.castmethod = 'b' and k.castcontext = 'i') as direct
           ) bind
     where ha.amopopr = ${op} and ha.amopstrategy = 1
       and (bind.direct or vt.typarray <> 0)
     limit 1`;
}

function toEquality(r: EqualityRow): Equality {
  const hash =
    r.hash_schema && r.hash_name ? { fn: { schema: r.hash_schema, name: r.hash_name }, direct: !!r.hash_direct } : null;
  const operand: QualifiedName | null =
    r.base_schema && r.base_name ? { schema: r.base_schema, name: r.base_name } : null;
  return { ...operatorEquality(r, true), hash, operand };
}

/**
 * An equality known by its operator only (a foreign key's pfeqop, an index operator class's that is
 * not its type's own): compared by that operator as the values are, never hashed.
 */
export function operatorEquality(
  r: Pick<EqualityRow, 'op_oid' | 'op_schema' | 'op_name'>,
  groupable: boolean,
): Equality {
  return {
    operator: { schema: r.op_schema, name: r.op_name },
    operatorOid: r.op_oid,
    hash: null,
    operand: null,
    groupable,
  };
}
