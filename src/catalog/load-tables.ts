import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { RowdoctorError } from '../errors.js';

/** Schemas that are never user data (namespace `n`). rowdoctor_backup holds our own backups. */
const SYSTEM_SCHEMA = sql`(
       n.nspname in ('pg_catalog', 'information_schema', 'pg_toast', 'rowdoctor_backup')
    or n.nspname like 'pg\\_temp\\_%'
    or n.nspname like 'pg\\_toast\\_temp\\_%')`;

export interface RelRow {
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
/** The server's version number (server_version_num: 180000 for 18.0). */
export async function loadServerVersion(db: Db | Tx): Promise<number> {
  const version = await sql<{ v: number }>`select current_setting('server_version_num')::int as v`.execute(db);
  return version.rows[0]?.v ?? 0;
}

/**
 * Every user table, plain or partitioned, with a partition's root (its topmost ancestor) and the
 * planner's size estimates (never negative: -1 means "never analyzed").
 */
export async function loadRelations(db: Db | Tx): Promise<RelRow[]> {
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
  return rels.rows;
}

/**
 * The schemas to check: `wanted`, or every user schema (empty ones included). A wanted schema that
 * does not exist is an error, with the near miss or the list of schemas there are.
 */
export async function checkedSchemas(db: Db | Tx, wanted: string[] | null): Promise<string[]> {
  const allSchemas = await sql<{ name: string }>`
    select n.nspname as name
      from pg_namespace n
     where not ${SYSTEM_SCHEMA}
     order by 1`.execute(db);
  const schemas = wanted ?? allSchemas.rows.map((r) => r.name);
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
  return schemas;
}
