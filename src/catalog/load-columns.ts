import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { loadEqualities } from './equality.js';
import type { Column, Equality } from './types.js';
import { groupBy } from './group-by.js';

interface ColRow {
  oid: number;
  name: string;
  type_oid: number;
  type: string;
  base_type: string;
  category: string;
  not_null: boolean;
  generated: boolean;
  virtual_expr: string | null;
  deterministic: boolean;
  collatable: boolean;
}
/**
 * The tables' live columns in order, by table oid; a domain's base type decides how its values hash
 * and compare. `equalities`: each column type's default equality, by type oid.
 */
export async function loadColumns(
  db: Db | Tx,
  oids: number[],
): Promise<{ columnsOf: Map<number, Column[]>; equalities: Map<number, Equality> }> {
  const cols = await sql<ColRow>`
    select a.attrelid::int as oid, a.attname as name, a.atttypid::int as type_oid,
           format_type(a.atttypid, a.atttypmod) as type,
           coalesce(bt.typname, t.typname) as base_type,
           coalesce(bt.typcategory, t.typcategory) as category,
           a.attnotnull as not_null, a.attgenerated <> '' as generated,
           case when a.attgenerated = 'v' then pg_get_expr(d.adbin, d.adrelid) end as virtual_expr,
           coalesce(co.collisdeterministic, true) as deterministic, a.attcollation <> 0 as collatable
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      left join pg_collation co on co.oid = a.attcollation
      left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where a.attrelid = any(${oids}::oid[]) and a.attnum > 0 and not a.attisdropped
     order by a.attrelid, a.attnum`.execute(db);
  const equalities = await loadEqualities(db, [...cols.rows.map((c) => c.type_oid)]);
  const columnsOf = new Map<number, Column[]>();
  for (const [oid, rows] of groupBy(cols.rows, (c) => c.oid))
    columnsOf.set(
      oid,
      rows.map((c) => ({
        name: c.name,
        type: c.type,
        baseType: c.base_type,
        category: c.category,
        notNull: c.not_null,
        generated: c.generated,
        virtual: c.virtual_expr,
        deterministic: c.deterministic,
        collatable: c.collatable,
        equality: equalities.get(c.type_oid) ?? null,
      })),
    );
  return { columnsOf, equalities };
}
