import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import type { Sql } from '../sql/build.js';
import { BACKUP_SCHEMA } from './backup-tables.js';

/** A column of a backup table, with its type there (format_type). */
export interface BackupColumn {
  name: string;
  type: string;
}

/** The columns of backup table `backup`, bookkeeping (`_rd_…`) included, in order. */
export async function backupColumns(db: Db | Tx, backup: string): Promise<BackupColumn[]> {
  const { rows } = await sql<BackupColumn>`
    select attname as name, format_type(atttypid, atttypmod) as type
      from pg_attribute
     where attrelid = ${`${BACKUP_SCHEMA}."${backup.replace(/"/g, '""')}"`}::regclass
       and attnum > 0 and not attisdropped
     order by attnum`.execute(db);
  return rows;
}

/**
 * Backup table `backup` of `table` as undo reads it: every column with the type the table's column
 * has now. Values of the application's types are stored as text (journal/backup-tables.ts), and so is
 * a column whose type the application changed from text since: each is cast to the live column's
 * type, which the server checks as it would the row's own. Where nothing needs a cast, the table
 * itself (a subquery of plain columns and casts is pulled up into the statement that reads it).
 * Always give it an alias: before PostgreSQL 16 a subquery in FROM needs one.
 */
export function typedBackup(backup: string, table: Table, columns: BackupColumn[]): Sql {
  const bt = sql.id(BACKUP_SCHEMA, backup);
  const live = new Map(table.columns.map((c) => [c.name, c.type]));
  const cast = (c: BackupColumn) => c.type === 'text' && live.has(c.name) && live.get(c.name) !== 'text';
  if (!columns.some(cast)) return bt;
  const list = columns.map((c) =>
    cast(c) ? sql`cast(${sql.id(c.name)} as ${sql.raw(live.get(c.name)!)}) as ${sql.id(c.name)}` : sql.id(c.name),
  );
  return sql`(select ${sql.join(list)} from ${bt})`;
}
