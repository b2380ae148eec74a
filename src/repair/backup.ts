import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { tableRef, type Sql } from '../sql/build.js';
import {
  AFTER,
  AFTER_UNKNOWN,
  BACKUP_SCHEMA,
  KEY,
  XMIN,
  backupTableName,
  ensureBackupTable,
  keyAfterUpdate,
} from '../journal/backup-tables.js';
import type { Tx } from '../db.js';
import { run, type BatchContext } from './context.js';
import { RUN_TABLES } from '../journal/schema.js';

/**
 * Every row a repair deletes or updates is copied to its backup table in the journal
 * (journal/backup-tables.ts) in the same transaction as the change; what an update left is noted
 * as its after-image, so that undo restores only rows nobody has changed since.
 */

/**
 * After an update of `table`, note what each updated row now holds (BEFORE triggers included) in
 * its backup rows still without one: undo later restores only rows that still hold exactly that,
 * so nothing the application wrote since is overwritten. Rows are matched by primary key; in a
 * table without one, as undo matches them (recordNoKeyAfterImages).
 */
export async function recordAfterImages(ctx: BatchContext, table: Table): Promise<void> {
  if (!ctx.backup) return;
  if (!table.primaryKey) return recordNoKeyAfterImages(ctx, table);
  await run(
    ctx,
    sql`
    update ${sql.id(BACKUP_SCHEMA, backupTableName(table))} b
       set ${sql.id(AFTER)} = md5((t.*)::text)  -- t.*: the whole row, even where the table has a column t
      from ${tableRef(table)} t
     where b._rd_run = ${ctx.runId}
       and b._rd_op = 'update'
       and b.${sql.id(AFTER)} is null
       and ${keyAfterUpdate(table, 'b', 't')}`,
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
 * AFTER_UNKNOWN: undo then leaves it alone rather than revert a row the run never touched. With the
 * md5 goes that xmin (XMIN): the row version undo tells the row by from untouched rows of the same
 * content (a re-pointed pivot row next to the survivor's identical one).
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
         set ${sql.id(AFTER)} = m.h,
             ${sql.id(XMIN)} = case when m.h <> ${AFTER_UNKNOWN} then m.v::xid end
        from (select p._rd_seq as seq, p.xmin::text as v,  -- xid has no ordering to group by
                     case when count(distinct ${h}) filter (where x.ctid is not null) = 1
                          then min(${h}) filter (where x.ctid is not null)
                          else ${AFTER_UNKNOWN} end as h
                from ${bt} p
                left join ${tableRef(table)} x on x.xmin = p.xmin and ${same} and ${moved}
               where ${pending} and p._rd_columns = ${cols}::text[]
               group by p._rd_seq, p.xmin::text) m
       where b._rd_run = ${ctx.runId} and b._rd_op = 'update' and b.${sql.id(AFTER)} is null and b._rd_seq = m.seq`,
      'backup',
    );
  }
}

/**
 * Per run, the tables whose backup table was made ready before its first batch (prepareBackupTables):
 * a batch then backs up rows without first asking the catalog (create if not exists, its columns) —
 * four round trips per backed-up statement that its transaction held its row locks through.
 */
const prepared = new Map<string, Set<string>>();

/** Before a run's batches, in a transaction of its own: the backup table of every table it may change. */
export async function prepareBackupTables(tx: Tx, runId: string, tables: Table[]): Promise<void> {
  for (const table of tables) await ensureBackupTable(tx, table);
  prepared.set(runId, new Set(tables.map((t) => t.id)));
}

/** Per batch transaction, the backup tables already listed in the run's tables (RUN_TABLES). */
const listed = new WeakMap<Tx, Set<string>>();

/**
 * Bookkeeping, not part of the plan (--sql leaves it out): the run wrote rows into `table`'s backup
 * table. Undo reads this run's tables only. Once per table and batch transaction.
 */
export async function listBackupTable(ctx: BatchContext, table: Table): Promise<void> {
  if (!ctx.apply) return;
  let inTx = listed.get(ctx.tx);
  if (!inTx) listed.set(ctx.tx, (inTx = new Set()));
  if (inTx.has(table.id)) return;
  inTx.add(table.id);
  await sql`
    insert into ${sql.id(BACKUP_SCHEMA, RUN_TABLES)} (run_id, backup_table)
    values (${ctx.runId}, ${backupTableName(table)})
        on conflict do nothing`.execute(ctx.tx);
}

/** `table`'s backup table exists and has its columns (made so now, unless before the run's batches). */
export async function readyBackupTable(ctx: BatchContext, table: Table): Promise<void> {
  if (ctx.apply && !prepared.get(ctx.runId)?.has(table.id)) await ensureBackupTable(ctx.tx, table);
}

/** After a rollback to a savepoint: what was listed in it is gone, so list again. */
export function forgetListedTables(tx: Tx): void {
  listed.delete(tx);
}

/** Copy the rows of `table` that `where` selects (alias t) into its backup, before they change. */
export async function backupRows(
  ctx: BatchContext,
  table: Table,
  op: 'delete' | 'update',
  where: Sql,
  columns: string[] | null,
  newValues?: Map<string, Sql>,
): Promise<number> {
  await readyBackupTable(ctx, table);
  const cols = sql.join(table.columns.map((c) => sql.id(c.name)));
  const values = sql.join(table.columns.map((c) => sql.id('t', c.name)));
  const changed = columns ? sql`${columns}::text[]` : sql`null`;
  // An update that changes primary-key columns: the key it will give the row, so that its
  // after-image, and undo, find the row there.
  const pk = table.primaryKey;
  const rekeys = op === 'update' && pk && newValues && pk.some((c) => newValues.has(c));
  const key = rekeys
    ? sql`array[${sql.join(pk.map((c) => sql`(${newValues.get(c) ?? sql.id('t', c)})::text`))}]`
    : sql`null`;
  const res = await run(
    ctx,
    sql`insert into ${sql.id(BACKUP_SCHEMA, backupTableName(table))}
           (_rd_run, _rd_seq, _rd_op, _rd_columns, ${sql.id(KEY)}, ${cols})
    select ${ctx.runId}, nextval(${`${BACKUP_SCHEMA}.seq`}), ${op}, ${changed}, ${key}, ${values}
      from ${tableRef(table)} t
     where ${where}`,
    'backup',
  );
  if (res.affected) await listBackupTable(ctx, table);
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
