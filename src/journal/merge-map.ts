import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { currentShadows } from '../sql/shadow.js';
import { BACKUP_SCHEMA } from './backup-tables.js';

/**
 * The merge map: every loser a merge deleted, with the survivor it was merged into (whole rows as
 * jsonb), per run. A child that still names a merged-away row — written by the application while
 * the merge ran, or pointing through a reference the database does not enforce — is an orphan
 * whose parent lives on as the survivor: it is re-pointed there, not deleted, in that run or later.
 * A dry run keeps its own map in pg_temp (a copy of the merges that count, which its merges add
 * to), so a later rule of the same dry run re-points what the apply's would.
 */
const realMerges = sql.id(BACKUP_SCHEMA, 'merges');
export const SHADOW_MERGES = 'rd_shadow_merges';
/** The merge map this statement reads and writes: a dry run's copy inside its shadow scope, else the real one. */
export const currentMergeMap = () => (currentShadows() ? sql.id('pg_temp', SHADOW_MERGES) : realMerges);

const mergeMapColumns = sql`
      seq bigint generated always as identity primary key,
      run_id text not null,
      table_schema text not null,
      table_name text not null,
      loser jsonb not null,
      survivor jsonb not null`;

export async function ensureMergeMap(db: Db | Tx): Promise<void> {
  await sql`create table if not exists ${realMerges} (${mergeMapColumns})`.execute(db);
}

/** A merge of a run since undone re-points nothing. */
export const notUndone = (m: string) => sql`
  not exists (
    select 1
      from ${sql.id(BACKUP_SCHEMA, 'runs')} u
     where u.undo_of = ${sql.id(m, 'run_id')} and u.command = 'undo' and u.status in ('completed', 'partial')
  )`;

/**
 * A dry run's merge map, in pg_temp: the merges of earlier runs that count (none of a run since
 * undone), in their order; the dry run's merges are added to it. Returns its name as compiled, and
 * the real map's, for --sql.
 */
export async function createShadowMergeMap(tx: Tx): Promise<[string, string]> {
  const shadow = sql.id('pg_temp', SHADOW_MERGES);
  await sql`drop table if exists ${shadow}`.execute(tx);
  await sql`create temp table ${shadow} (${mergeMapColumns})`.execute(tx);
  const { rows } = await sql<{ ok: boolean }>`
    select to_regclass(${`${BACKUP_SCHEMA}.merges`}) is not null
       and to_regclass(${`${BACKUP_SCHEMA}.runs`}) is not null as ok`.execute(tx);
  if (rows[0]?.ok)
    await sql`
      insert into ${shadow} (run_id, table_schema, table_name, loser, survivor)
      select run_id, table_schema, table_name, loser, survivor
        from ${realMerges} m
       where ${notUndone('m')}
       order by seq`.execute(tx);
  return [shadow.compile(tx).sql, realMerges.compile(tx).sql];
}
