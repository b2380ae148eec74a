import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import type { UniqueIndex } from './types.js';

interface PartKeyRow {
  oid: number;
  columns: (string | null)[];
}

/** What a table's keys allow, by table oid. */
export interface TableKeys {
  /** Columns that lead a valid, non-partial index: looking rows up by them is cheap. */
  indexedLeading: Map<number, string[]>;
  /**
   * Columns that lead a valid, non-partial btree index in their own collation and default operator
   * class: `ORDER BY` and `>` on them walk the index (discovery's loose index scan of a type column).
   */
  orderedLeading: Map<number, string[]>;
  /**
   * A partitioned table's partition key columns (null for an expression): a unique index on it
   * must include them all.
   */
  partitionKey: Map<number, (string | null)[]>;
}

export async function loadKeys(db: Db | Tx, oids: number[]): Promise<TableKeys> {
  // Columns that lead a valid, non-partial index: looking rows up by them is cheap.
  const leading = await sql<{ oid: number; cols: string[] }>`
    select i.indrelid::int as oid, array_agg(distinct a.attname)::text[] as cols
      from pg_index i
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
     where i.indisvalid and i.indpred is null and i.indrelid = any(${oids}::oid[])
     group by 1`.execute(db);

  const ordered = await sql<{ oid: number; cols: string[] }>`
    select i.indrelid::int as oid, array_agg(distinct a.attname)::text[] as cols
      from pg_index i
      join pg_class ic on ic.oid = i.indexrelid
      join pg_am am on am.oid = ic.relam
      join pg_opclass oc on oc.oid = i.indclass[0]
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
     where i.indisvalid and i.indpred is null and i.indrelid = any(${oids}::oid[])
       and am.amname = 'btree' and oc.opcdefault and i.indcollation[0] = a.attcollation
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

  return {
    indexedLeading: new Map(leading.rows.map((l) => [l.oid, l.cols])),
    orderedLeading: new Map(ordered.rows.map((l) => [l.oid, l.cols])),
    partitionKey: new Map(partKeys.rows.map((p) => [p.oid, p.columns])),
  };
}

/** The primary key's columns; null without one, or where it holds an expression. */
export function primaryKeyOf(uniqueIndexes: UniqueIndex[]): string[] | null {
  const pk = uniqueIndexes.find((i) => i.primary);
  return pk && pk.columns.every((c) => c !== null) ? pk.columns : null;
}
