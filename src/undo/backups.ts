import { sql } from 'kysely';
import type { Catalog, Table } from '../catalog/types.js';
import type { Db } from '../db.js';
import { RowdoctorError } from '../errors.js';
import { AFTER, BACKUP_SCHEMA, BATCH, KEY, XMIN } from '../journal/backup-tables.js';
import { RUN_TABLES } from '../journal/schema.js';
import { backupColumns, typedBackup } from '../journal/typed-backup.js';
import type { RecordedReference } from '../repair/references.js';
import type { Sql } from '../sql/build.js';
import { chainHeads, inSlice, type Slice } from './conflicts.js';
import { linkChildren } from './children.js';
import { linkParents } from './parents.js';
import type { BackupInfo, RepairBatch } from './types.js';

/**
 * What a run backed up, table by table: how many rows to restore and to revert, and the repair's
 * batch transactions (none for runs of versions that did not record them: `legacy`).
 */
export async function backupsOf(
  session: Db,
  catalog: Catalog,
  slice: Slice,
  references: RecordedReference[] | undefined,
): Promise<{ infos: BackupInfo[]; batches: RepairBatch[]; legacy: boolean }> {
  const { runId } = slice;
  // The backup tables the run wrote to; for runs of versions that did not record them, every one.
  const recorded = await sql<{ ok: boolean }>`
    select to_regclass(${`${BACKUP_SCHEMA}.${RUN_TABLES}`}) is not null as ok`.execute(session);
  const ofRun = recorded.rows[0]?.ok
    ? sql`
      where not exists (select 1 from ${sql.id(BACKUP_SCHEMA, RUN_TABLES)} r where r.run_id = ${runId})
         or t.backup_table in (select r.backup_table from ${sql.id(BACKUP_SCHEMA, RUN_TABLES)} r
                                where r.run_id = ${runId})`
    : sql``;
  const list = await sql<{ backup_table: string; table_schema: string; table_name: string }>`
    select t.backup_table, t.table_schema, t.table_name
      from ${sql.id(BACKUP_SCHEMA, 'tables')} t
      ${ofRun}
     order by 1`.execute(session);
  const out: BackupInfo[] = [];
  const batches = new Map<string, RepairBatch>();
  let legacy = false;
  for (const b of list.rows) {
    const bt = sql.id(BACKUP_SCHEMA, b.backup_table);
    // Backup tables are written in bulk and rarely analysed before an undo reads them: without
    // statistics the planner guesses their size, and its plans over them may cost minutes. (An
    // ANALYZE by a role that does not own the table only warns, and skips it.)
    await sql`analyze ${bt}`.execute(session);
    const columns = await backupColumns(session, b.backup_table);
    const has = new Set(columns.map((r) => r.name));
    const table = catalog.tables.find((t) => t.schema === b.table_schema && t.name === b.table_name);
    const source = table ? typedBackup(b.backup_table, table, columns) : bt;
    const target = { backup: b.backup_table, source, batched: has.has(BATCH) };
    const scope = inSlice(target, slice);
    if (table) await refuseLostColumns(session, table, b.backup_table, has, scope, slice.runId);
    // A primary key some update changed (runs of earlier versions recorded none): rows are then
    // counted by chains of updates, the key each update left leading to the next (undo/rekeyed.ts).
    const keyed = sql<{ ok: boolean }>`
      select exists (select 1 from ${bt} where ${scope} and _rd_op = 'update' and ${sql.id(KEY)} is not null) as ok`;
    const rekeyed = Boolean(table?.primaryKey) && has.has(KEY) && (await keyed.execute(session)).rows[0]?.ok === true;
    const updated = rekeyed
      ? sql`(select count(*) from ${bt} h where ${inSlice(target, slice, 'h')} and h._rd_op = 'update'
                                           and ${chainHeads({ ...target, table: table! }, slice, 'h')})`
      : sql`(select count(*)
               from (select distinct ${rowIdentity(catalog, b)}
                       from ${bt}
                      where ${scope} and _rd_op = 'update') u)`;
    const stats = await sql<{ restore: string; revert: string; last_delete: string | null }>`
      select count(*) filter (where _rd_op = 'delete') as restore,
             ${updated} as revert,
             max(_rd_seq) filter (where _rd_op = 'delete') as last_delete
        from ${bt} where ${scope}`.execute(session);
    const s = stats.rows[0]!;
    if (Number(s.restore) + Number(s.revert) === 0) continue;
    const afterImages =
      has.has(AFTER) &&
      Number(
        (
          await sql<{ n: string }>`
            select count(*) as n from ${bt}
             where ${scope} and _rd_op = 'update' and ${sql.id(AFTER)} is null`.execute(session)
        ).rows[0]?.n ?? 0,
      ) === 0;
    // Without a primary key: every update recorded the row version it left (runs of earlier versions did not).
    const rowVersions =
      afterImages &&
      !table?.primaryKey &&
      has.has(XMIN) &&
      Number(
        (
          await sql<{ n: string }>`
            select count(*) as n from ${bt}
             where ${scope} and _rd_op = 'update' and ${sql.id(XMIN)} is null`.execute(session)
        ).rows[0]?.n ?? 0,
      ) === 0;
    if (!table)
      throw new RowdoctorError(
        `Run ${runId} changed ${b.table_schema}.${b.table_name}, which no longer exists; it cannot be restored.`,
      );
    const inBatches = new Set<string>();
    if (target.batched) {
      const { rows } = await sql<{ batch: string | null; n: string; last: string }>`
        select ${sql.id(BATCH)}::text as batch, count(*) as n, max(_rd_seq) as last
          from ${bt}
         where ${scope}
         group by 1`.execute(session);
      for (const r of rows) {
        if (r.batch === null) {
          legacy = true;
          continue;
        }
        inBatches.add(r.batch);
        const seen = batches.get(r.batch) ?? { id: r.batch, rows: 0, last: 0 };
        batches.set(r.batch, { id: r.batch, rows: seen.rows + Number(r.n), last: Math.max(seen.last, Number(r.last)) });
      }
    } else legacy = true;
    out.push({
      ...target,
      inBatches,
      table,
      columns: table.columns.filter((c) => has.has(c.name)),
      added: await addedSince(session, table, has),
      rekeyed,
      children: [],
      parents: [],
      restore: Number(s.restore),
      revert: Number(s.revert),
      lastDelete: Number(s.last_delete ?? 0),
      afterImages,
      rowVersions,
    });
  }
  linkParents(catalog, out, references);
  linkChildren(catalog, out);
  return { infos: out, batches: legacy ? [] : [...batches.values()], legacy };
}

/**
 * Columns the table gained since the backup was written that the application may write: each with
 * what ADD COLUMN gave the rows already there (pg_attribute's missing value, as text), else NULL.
 */
async function addedSince(
  session: Db,
  table: Table,
  held: Set<string>,
): Promise<{ name: string; missing: string | null }[]> {
  if (table.columns.every((c) => held.has(c.name))) return [];
  const { rows } = await sql<{ name: string; missing: string | null }>`
    select attname as name, case when atthasmissing then (attmissingval::text::text[])[1] end as missing
      from pg_attribute
     where attrelid = ${table.oid}::oid and attnum > 0 and not attisdropped
       and attidentity = '' and attgenerated = ''
       and attname <> all(${[...held]}::text[])
     order by attnum`.execute(session);
  return rows;
}

/**
 * A column of the backup that the table no longer has (dropped or renamed since the repair), or one
 * the table has that the backup lost (a DROP TYPE … CASCADE drops backup columns too): the run's
 * rows cannot come back as they were. Undo refuses before it plans anything, naming the columns.
 */
async function refuseLostColumns(
  session: Db,
  table: Table,
  backup: string,
  backupColumns: Set<string>,
  scope: Sql,
  runId: string,
): Promise<void> {
  const live = new Set(table.columns.map((c) => c.name));
  const gone = [...backupColumns].filter((c) => !c.startsWith('_rd_') && !live.has(c));
  const bt = sql.id(BACKUP_SCHEMA, backup);
  const where = `${BACKUP_SCHEMA}."${backup.replace(/"/g, '""')}"`;
  const hint =
    `The rows as they were before the run are in ${where} (_rd_run = '${runId}'): ` +
    'rename the column back and run undo again, or restore them by hand.';
  if (gone.length) {
    const held = sql.join(
      gone.map((c) => sql`${sql.id(c)} is not null`),
      sql` or `,
    );
    const { rows } = await sql<{ n: string }>`select count(*) as n from ${bt} where ${scope} and (${held})`.execute(
      session,
    );
    const n = Number(rows[0]?.n ?? 0);
    if (n)
      throw new RowdoctorError(
        `Undo of ${runId} cannot restore ${table.id}: column(s) ${gone.join(', ')} of its backup are no longer in ` +
          `the table (dropped or renamed since the repair), and ${n.toLocaleString('en-US')} backed-up row(s) ` +
          'hold values there. Nothing was changed.',
        { hint },
      );
  }
  const { rows } = await sql<{ n: string }>`
    select count(*) as n from pg_attribute
     where attrelid = ${where}::regclass and attnum > 0 and attisdropped`.execute(session);
  const missing = table.columns.filter((c) => !backupColumns.has(c.name)).map((c) => c.name);
  if (Number(rows[0]?.n ?? 0) > 0 && missing.length)
    throw new RowdoctorError(
      `Undo of ${runId} cannot restore ${table.id}: its backup lost column(s) since the repair (dropped with ` +
        `something they depended on, such as DROP TYPE … CASCADE), so ${missing.join(', ')} cannot come back. ` +
        'Nothing was changed.',
      { hint },
    );
}

/** What tells backed-up rows apart: the primary key, or else the row itself (the backup's ctid). */
function rowIdentity(catalog: Catalog, b: { table_schema: string; table_name: string }) {
  const table = catalog.tables.find((t) => t.schema === b.table_schema && t.name === b.table_name);
  return table?.primaryKey ? sql.join(table.primaryKey.map((c) => sql.id(c))) : sql`ctid`;
}
