import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { Tx } from '../db.js';
import { tableName, type Sql } from '../sql/build.js';

/**
 * Backups live in schema rowdoctor_backup: one copy per user table (CREATE TABLE … LIKE), so a
 * restore is an INSERT … SELECT of the very same values — bit for bit. Columns of the application's
 * own types (enums, domains, composites, arrays of them, extension types: any type outside
 * pg_catalog) are the exception: they are stored as text, the type's name recorded as the column's
 * comment, and undo casts them back (journal/typed-backup.ts). A backup column of such a type would
 * depend on it: the application's DROP TYPE would fail on it, or drop it with CASCADE.
 * Every row deleted or updated is copied in the same transaction as the change.
 */
export const BACKUP_SCHEMA = 'rowdoctor_backup';

/** The backup table's name: the table's oid keeps it unique; the name keeps it readable. */
export function backupTableName(table: Table): string {
  return `${table.oid}_${table.name}`.slice(0, 63);
}

/** Create the backup copy of `table` if missing; add columns the table gained since. */
export async function ensureBackupTable(tx: Tx, table: Table): Promise<void> {
  const name = backupTableName(table);
  const bt = sql.id(BACKUP_SCHEMA, name);
  await sql`create table if not exists ${bt} (
    _rd_run text not null, _rd_seq bigint not null, _rd_op text not null, _rd_columns text[],
    like ${tableName(table)})`.execute(tx);
  await sql`
    insert into ${sql.id(BACKUP_SCHEMA, 'tables')}
    values (${name}, ${table.schema}, ${table.name})
        on conflict do nothing`.execute(tx);
  // The backup table's columns so far: a column added to the table since an earlier run is added to it.
  const backupTable = `${BACKUP_SCHEMA}."${name.replace(/"/g, '""')}"`;
  const existing = await sql<{ name: string; typed: boolean }>`
    select a.attname as name, t.typnamespace <> 'pg_catalog'::regnamespace as typed
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
     where a.attrelid = ${backupTable}::regclass and a.attnum > 0 and not a.attisdropped`.execute(tx);
  const have = new Set(existing.rows.map((r) => r.name));
  const added = table.columns.filter((c) => !have.has(c.name));
  for (const c of added) await sql`alter table ${bt} add column ${sql.id(c.name)} ${sql.raw(c.type)}`.execute(tx);
  if (added.length || existing.rows.some((r) => r.typed)) await storeApplicationTypesAsText(tx, backupTable);
  if (!have.has(AFTER)) {
    // md5 of the whole row as the update left it: undo restores a row only while it still matches
    await sql`alter table ${bt} add column ${sql.id(AFTER)} text`.execute(tx);
    await sql`
      create index ${sql.id(`${table.oid}_rd_pending_after`)}
          on ${bt} (_rd_run)
       where _rd_op = 'update' and ${sql.id(AFTER)} is null`.execute(tx);
  }
  if (!have.has(KEY))
    // The primary key an update gave the row, as text per column, where it changed it (a re-pointed
    // join table keyed by its references): undo finds the row there.
    await sql`alter table ${bt} add column ${sql.id(KEY)} text[]`.execute(tx);
  if (!have.has(BATCH)) {
    // Which batch transaction backed the row up: undo takes the batches back one by one, last first.
    // Rows of earlier versions' runs keep NULL (undone in one transaction); adding the default
    // afterwards leaves them as they are and rewrites nothing.
    await sql`alter table ${bt} add column ${sql.id(BATCH)} bigint`.execute(tx);
    await sql`alter table ${bt} alter column ${sql.id(BATCH)} set default txid_current()`.execute(tx);
  }
  if (!have.has(XMIN))
    // The row version (xmin) an update of a table without a primary key left: undo tells the row
    // from untouched ones of the same content by it. Rows of earlier versions' runs keep NULL.
    await sql`alter table ${bt} add column ${sql.id(XMIN)} xid`.execute(tx);
}

/**
 * The backup column holding, for an update of a table without a primary key, the xmin of the live
 * row it left (the repair's (sub)transaction): the row version that tells it from rows of the same
 * content the run never touched (older xmin) and from rows the application wrote since (newer one).
 * PostgreSQL keeps the raw xmin when it freezes a row (9.4+: freezing sets a hint bit), and VACUUM
 * FULL and CLUSTER copy it; a dump and restore gives every row a new one (undo then sees conflicts,
 * never a wrong row). NULL where the after-image is unknown, and in runs of earlier versions.
 */
export const XMIN = '_rd_xmin';

/**
 * The backup column holding the id of the transaction that wrote the row (txid_current(), by its
 * default): one repair batch. Rows backed up by versions before it have none.
 */
export const BATCH = '_rd_batch';

/**
 * The backup column holding, for an update that changed the row's primary key, the key it gave the
 * row (each column as text); NULL where the key stayed (and in runs of earlier versions).
 */
export const KEY = '_rd_key';

/** The backup column holding md5(row::text) of an updated row right after the repair's update. */
export const AFTER = '_rd_after';

/**
 * The after-image of an updated row of a table without a primary key that the repair could not
 * tell apart from other rows with another content (or found no more): it never equals an md5, so
 * undo leaves such a row alone and reports it.
 */
export const AFTER_UNKNOWN = 'unmatched';

/**
 * Live row `t` holds the primary key that backup row `b` recorded for it after its update: the key
 * the update gave it (KEY, where it changed the key), else the key it had.
 */
export function keyAfterUpdate(table: Table, b: string, t: string): Sql {
  return sql.join(
    table.primaryKey!.map((c, i) => {
      const type = table.columns.find((x) => x.name === c)?.type ?? 'text';
      // The backup's column is cast too: a column of an application type is stored as text.
      return sql`${sql.id(t, c)} = case when ${sql.id(b, KEY)} is null then cast(${sql.id(b, c)} as ${sql.raw(type)})
                                      else cast(${sql.id(b, KEY)}[${sql.lit(i + 1)}] as ${sql.raw(type)}) end`;
    }),
    sql` and `,
  );
}

/** The primary key backup row `b` recorded for the row after its update, as text per column. */
export function keyTextAfterUpdate(table: Table, b: string): Sql {
  return sql`coalesce(${sql.id(b, KEY)}, ${keyText(table, b)})`;
}

/** The primary key of row `b` (a backup row or a live one), as text per column. */
export function keyText(table: Table, b: string): Sql {
  return sql`array[${sql.join(table.primaryKey!.map((c) => sql`${sql.id(b, c)}::text`))}]`;
}

/**
 * Turn the backup's columns of the application's types into text, each with its type's name (schema
 * qualified) as the column's comment: new backup tables (LIKE copies the types), columns added
 * since, and backup tables of earlier versions, which held the types themselves.
 */
async function storeApplicationTypesAsText(tx: Tx, backupTable: string): Promise<void> {
  const { rows } = await sql<{ name: string; type: string }>`
    select a.attname as name,
           case when e.oid is null then format('%I.%I', n.nspname, t.typname)
                else format('%I.%I[]', en.nspname, e.typname) end as type
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      join pg_namespace n on n.oid = t.typnamespace
      left join pg_type e on e.oid = t.typelem and t.typcategory = 'A'
      left join pg_namespace en on en.oid = e.typnamespace
     where a.attrelid = ${backupTable}::regclass and a.attnum > 0 and not a.attisdropped
       and t.typnamespace <> 'pg_catalog'::regnamespace
       -- Only the owner may alter it: another role's backups of earlier versions keep their types.
       and pg_has_role((select relowner from pg_class where oid = ${backupTable}::regclass), 'USAGE')
     order by a.attnum`.execute(tx);
  if (!rows.length) return;
  const bt = sql.raw(backupTable);
  const changes = rows.map((c) => sql`alter column ${sql.id(c.name)} type text using ${sql.id(c.name)}::text`);
  await sql`alter table ${bt} ${sql.join(changes)}`.execute(tx);
  for (const c of rows) await sql`comment on column ${bt}.${sql.id(c.name)} is ${sql.lit(c.type)}`.execute(tx);
}
