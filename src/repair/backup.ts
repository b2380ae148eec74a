import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { tableRef, type Sql, tableName } from '../sql/build.js';
import { run, type BatchContext } from './context.js';
import { ensureMergeMap } from './merge-map.js';

/**
 * Backups live in schema rowdoctor_backup: one typed copy per user table (CREATE TABLE … LIKE),
 * so a restore is an INSERT … SELECT of the very same values — bit for bit, no text round trip.
 * Every row deleted or updated is copied in the same transaction as the change.
 */
export const BACKUP_SCHEMA = 'rowdoctor_backup';

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
}

/** The backup table's name: the table's oid keeps it unique; the name keeps it readable. */
export function backupTableName(table: Table): string {
  return `${table.oid}_${table.name}`.slice(0, 63);
}

/** Create the typed backup copy of `table` if missing; add columns the table gained since. */
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
  const existing = await sql<{ name: string }>`
    select attname as name
      from pg_attribute
     where attrelid = ${backupTable}::regclass and attnum > 0 and not attisdropped`.execute(tx);
  const have = new Set(existing.rows.map((r) => r.name));
  for (const c of table.columns.filter((c) => !have.has(c.name))) {
    await sql`alter table ${bt} add column ${sql.id(c.name)} ${sql.raw(c.type)}`.execute(tx);
  }
  if (!have.has(AFTER)) {
    // md5 of the whole row as the update left it: undo restores a row only while it still matches
    await sql`alter table ${bt} add column ${sql.id(AFTER)} text`.execute(tx);
    await sql`
      create index ${sql.id(`${table.oid}_rd_pending_after`)}
          on ${bt} (_rd_run)
       where _rd_op = 'update' and ${sql.id(AFTER)} is null`.execute(tx);
  }
  if (!have.has(BATCH)) {
    // Which batch transaction backed the row up: undo takes the batches back one by one, last first.
    // Rows of earlier versions' runs keep NULL (undone in one transaction); adding the default
    // afterwards leaves them as they are and rewrites nothing.
    await sql`alter table ${bt} add column ${sql.id(BATCH)} bigint`.execute(tx);
    await sql`alter table ${bt} alter column ${sql.id(BATCH)} set default txid_current()`.execute(tx);
  }
}

/**
 * The backup column holding the id of the transaction that wrote the row (txid_current(), by its
 * default): one repair batch. Rows backed up by versions before it have none.
 */
export const BATCH = '_rd_batch';

/** The backup column holding md5(row::text) of an updated row right after the repair's update. */
export const AFTER = '_rd_after';

/**
 * The after-image of an updated row of a table without a primary key that the repair could not
 * tell apart from other rows with another content (or found no more): it never equals an md5, so
 * undo leaves such a row alone and reports it.
 */
export const AFTER_UNKNOWN = 'unmatched';

/**
 * After an update of `table`, note what each updated row now holds (BEFORE triggers included) in
 * its backup rows still without one: undo later restores only rows that still hold exactly that,
 * so nothing the application wrote since is overwritten. Rows are matched by primary key; in a
 * table without one, as undo matches them (recordNoKeyAfterImages).
 */
export async function recordAfterImages(ctx: BatchContext, table: Table): Promise<void> {
  if (!ctx.backup) return;
  if (!table.primaryKey) return recordNoKeyAfterImages(ctx, table);
  const matches = sql.join(
    table.primaryKey.map((c) => sql`${sql.id('b', c)} = ${sql.id('t', c)}`),
    sql` and `,
  );
  await run(
    ctx,
    sql`
    update ${sql.id(BACKUP_SCHEMA, backupTableName(table))} b
       set ${sql.id(AFTER)} = md5((t.*)::text)  -- t.*: the whole row, even where the table has a column t
      from ${tableRef(table)} t
     where b._rd_run = ${ctx.runId}
       and b._rd_op = 'update'
       and b.${sql.id(AFTER)} is null
       and ${matches}`,
    'backup',
  );
}

/** The row value of `columns` under `alias`, as text: null-safe and byte-exact, and hashable for a join. */
function rowText(alias: string, columns: string[]): Sql {
  return sql`row(${sql.join(columns.map((c) => sql.id(alias, c)))})::text`;
}

/**
 * Without a primary key, the updated row is the live row that the same (sub)transaction wrote as
 * the backup row (equal xmin: the backup is copied right before the update, in the same savepoint),
 * that holds the backup's values in every column the update did not change and other values in
 * those it did (compared as row text: byte-exact, and a json column has no equality). Each backup row gets that
 * row's md5 only where its candidates all hold the same content (rows equal in every column are
 * interchangeable); where they do not, or none is left (a BEFORE trigger stamped a column),
 * AFTER_UNKNOWN: undo then leaves it alone rather than revert a row the run never touched.
 */
async function recordNoKeyAfterImages(ctx: BatchContext, table: Table): Promise<void> {
  const bt = sql.id(BACKUP_SCHEMA, backupTableName(table));
  const pending = sql`p._rd_run = ${ctx.runId} and p._rd_op = 'update' and p.${sql.id(AFTER)} is null`;
  const { rows } = await run<{ cols: string[] }>(
    ctx,
    sql`select distinct _rd_columns as cols from ${bt} p where ${pending}`,
    'backup',
  );
  for (const { cols } of rows) {
    const stored = table.columns.filter((c) => !c.generated).map((c) => c.name);
    const others = stored.filter((c) => !cols.includes(c));
    const changed = stored.filter((c) => cols.includes(c));
    const same = others.length ? sql`${rowText('x', others)} = ${rowText('p', others)}` : sql`true`;
    const moved = changed.length ? sql`${rowText('x', changed)} <> ${rowText('p', changed)}` : sql`false`;
    const h = sql`md5((x.*)::text)`;
    await run(
      ctx,
      sql`
      update ${bt} b
         set ${sql.id(AFTER)} = m.h
        from (select p._rd_seq as seq,
                     case when count(distinct ${h}) filter (where x.ctid is not null) = 1
                          then min(${h}) filter (where x.ctid is not null)
                          else ${AFTER_UNKNOWN} end as h
                from ${bt} p
                left join ${tableRef(table)} x on x.xmin = p.xmin and ${same} and ${moved}
               where ${pending} and p._rd_columns = ${cols}::text[]
               group by p._rd_seq) m
       where b._rd_run = ${ctx.runId} and b._rd_op = 'update' and b.${sql.id(AFTER)} is null and b._rd_seq = m.seq`,
      'backup',
    );
  }
}

/** Copy the rows of `table` that `where` selects (alias t) into its backup, before they change. */
export async function backupRows(
  ctx: BatchContext,
  table: Table,
  op: 'delete' | 'update',
  where: Sql,
  columns: string[] | null,
): Promise<number> {
  if (ctx.apply) await ensureBackupTable(ctx.tx, table);
  const cols = sql.join(table.columns.map((c) => sql.id(c.name)));
  const values = sql.join(table.columns.map((c) => sql.id('t', c.name)));
  const changed = columns ? sql`${columns}::text[]` : sql`null`;
  const res = await run(
    ctx,
    sql`insert into ${sql.id(BACKUP_SCHEMA, backupTableName(table))} (_rd_run, _rd_seq, _rd_op, _rd_columns, ${cols})
    select ${ctx.runId}, nextval(${`${BACKUP_SCHEMA}.seq`}), ${op}, ${changed}, ${values}
      from ${tableRef(table)} t
     where ${where}`,
    'backup',
  );
  return res.affected;
}

/**
 * Before rows of `table` selected by `where` (alias t) get new values in `columns`: back up the rows
 * that foreign keys with ON UPDATE CASCADE / SET NULL / SET DEFAULT will rewrite along with them,
 * at any depth, so undo restores those too. Returns the tables whose after-images to record once
 * the update has run.
 */
export async function backupCascades(
  ctx: BatchContext,
  table: Table,
  where: Sql,
  columns: string[],
  depth = 0,
): Promise<Table[]> {
  if (!ctx.backup || depth > 16) return [];
  const byId = new Map(ctx.catalog.tables.map((t) => [t.id, t]));
  const root = (id: string) => ctx.catalog.partitionRoot.get(id) ?? id;
  const rewritten: Table[] = [];
  for (const fk of ctx.catalog.foreignKeys) {
    if (root(fk.references) !== table.id || !['c', 'n', 'd'].includes(fk.onUpdate)) continue;
    if (!fk.refColumns.some((c) => columns.includes(c))) continue;
    const child = byId.get(root(fk.table));
    if (!child) continue;
    // The child's `t` outside the subquery, the parent's `t` inside it: the rows pointing at rows `where` selects.
    const childColumns = sql.join(fk.columns.map((c) => sql.id('t', c)));
    const parentColumns = sql.join(fk.refColumns.map((c) => sql.id('t', c)));
    const pointing = sql`(${childColumns}) in (select ${parentColumns} from ${tableRef(table)} t where ${where})`;
    await backupRows(ctx, child, 'update', pointing, fk.columns);
    rewritten.push(child, ...(await backupCascades(ctx, child, pointing, fk.columns, depth + 1)));
  }
  return rewritten;
}
