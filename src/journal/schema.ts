import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { BACKUP_SCHEMA } from './backup-tables.js';
import { ensureMergeMap } from './merge-map.js';

/**
 * The journal a run leaves in schema rowdoctor_backup, created on the first --apply: the sequence
 * that orders backed-up rows, the runs table, the merge map, the list of backup tables, and which
 * of them each run wrote to (undo reads those only: its cost follows the run, not the database).
 */
export async function ensureBackupSchema(db: Db | Tx): Promise<void> {
  await sql`create schema if not exists ${sql.id(BACKUP_SCHEMA)}`.execute(db);
  await sql`create sequence if not exists ${sql.id(BACKUP_SCHEMA, 'seq')}`.execute(db);
  await sql`create table if not exists ${sql.id(BACKUP_SCHEMA, 'runs')} (
    run_id text primary key,
    command text not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    status text not null,
    options jsonb not null,
    counts jsonb,
    undo_of text
  )`.execute(db);
  // Added after the first release: databases repaired by an earlier version lack it.
  await sql`alter table ${sql.id(BACKUP_SCHEMA, 'runs')} add column if not exists error text`.execute(db);
  await ensureMergeMap(db);
  await sql`create table if not exists ${sql.id(BACKUP_SCHEMA, 'tables')} (
    backup_table text primary key,
    table_schema text not null,
    table_name text not null,
    unique (table_schema, table_name)
  )`.execute(db);
  await sql`create table if not exists ${sql.id(BACKUP_SCHEMA, RUN_TABLES)} (
    run_id text not null,
    backup_table text not null,
    primary key (run_id, backup_table)
  )`.execute(db);
}

/** rowdoctor_backup's table of the backup tables each run wrote rows to (runs of earlier versions: none). */
export const RUN_TABLES = 'run_tables';
