import { sql } from 'kysely';
import type { Db } from '../db.js';
import { BACKUP_SCHEMA, BATCH } from '../journal/backup-tables.js';
import type { Sql } from '../sql/build.js';
import type { BackupInfo } from './types.js';

/** The repair batches of `runId` that earlier (interrupted) undos took back. */
export async function undoneBatches(session: Db, runId: string): Promise<string[]> {
  const has = await sql<{ ok: boolean }>`select to_regclass(${`${BACKUP_SCHEMA}.undone`}) is not null as ok`.execute(
    session,
  );
  if (!has.rows[0]?.ok) return [];
  const { rows } = await sql<{ batch: string }>`
    select batch::text as batch from ${sql.id(BACKUP_SCHEMA, 'undone')} where undo_of = ${runId}`.execute(session);
  return rows.map((r) => r.batch);
}

/**
 * Before the first batch: the table that records which repair batches are taken back, and an
 * index per backup table that finds one batch's rows (backup tables are rowdoctor's own: building
 * it locks no user table).
 */
export async function prepareBatches(session: Db, infos: BackupInfo[]): Promise<void> {
  // Looked up first: CREATE … IF NOT EXISTS still needs CREATE on the schema, which a role that only
  // undoes may lack once the table is there.
  const has = await sql<{ ok: boolean }>`select to_regclass(${`${BACKUP_SCHEMA}.undone`}) is not null as ok`.execute(
    session,
  );
  if (!has.rows[0]?.ok)
    await sql`
      create table if not exists ${sql.id(BACKUP_SCHEMA, 'undone')} (
        undo_of text not null,
        batch bigint not null,
        undo_run text not null,
        primary key (undo_of, batch)
      )`.execute(session);
  await indexBackups(session, infos);
}

/**
 * Index each backup table on what undo looks its rows up by (backup tables are rowdoctor's own:
 * building an index locks no user table). Before anything reads them, the dry run's conflict check
 * included: at 1M merged groups that check ran for more than six minutes without them.
 */
export async function indexBackups(session: Db, infos: BackupInfo[]): Promise<void> {
  for (const info of infos) {
    if (info.batched) await indexBackup(session, info, 'batch', sql`_rd_run, ${sql.id(BATCH)}`);
    // A backed-up row is looked up by its key once per row undo restores or reverts: whether a
    // parent is back (undo/parents.ts), whether a row was updated earlier, what points at it. Without
    // an index each look-up reads the whole backup: 10k re-pointed rows took minutes.
    const pk = info.table.primaryKey;
    if (pk) await indexBackup(session, info, 'key', sql`${sql.join(pk.map((c) => sql.id(c)))}, _rd_run`);
  }
}

/** Index the backup table of `info` on `columns` as `<oid>_rd_<what>`, once. */
async function indexBackup(session: Db, info: BackupInfo, what: string, columns: Sql): Promise<void> {
  const name = `${info.table.oid}_rd_${what}`;
  // Only the backup table's owner may index it; without the index undo is slower, not wrong.
  const { rows } = await sql<{ build: boolean }>`
    select pg_has_role(c.relowner, 'USAGE') and to_regclass(${`${BACKUP_SCHEMA}."${name}"`}) is null as build
      from pg_class c
     where c.oid = ${`${BACKUP_SCHEMA}."${info.backup.replace(/"/g, '""')}"`}::regclass`.execute(session);
  if (rows[0]?.build)
    await sql`create index if not exists ${sql.id(name)} on ${sql.id(BACKUP_SCHEMA, info.backup)} (${columns})`.execute(
      session,
    );
}
