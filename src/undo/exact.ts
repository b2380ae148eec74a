import { sql } from 'kysely';
import type { Column, Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { AFTER, AFTER_UNKNOWN, BACKUP_SCHEMA } from '../journal/backup-tables.js';
import { tableRef, type Sql } from '../sql/build.js';
import type { Warning } from '../catalog/row-security.js';
import { inSlice, type Slice } from './conflicts.js';

/** A table undo could not restore bit for bit, and why. */
export interface Inexact {
  table: string;
  reason: string;
  /** What to do about it. */
  hint: string;
}

const REPLICA_HINT =
  'Run undo as a superuser or, on PostgreSQL 15+, a role granted SET ON PARAMETER session_replication_role: ' +
  'undo then restores with session_replication_role = replica, so triggers and foreign-key checks stay quiet.';

/**
 * Undo restores bit for bit by running with session_replication_role = replica: ordinary triggers
 * (a BEFORE UPDATE that stamps updated_at) and foreign-key checks (a NOT VALID key that rejects the
 * rows it was added after) then stay quiet, as for a logical replication apply. A superuser may set
 * it; from PostgreSQL 15 a role granted SET ON PARAMETER session_replication_role may too.
 */
export async function mayReplicate(db: Db | Tx, serverVersion: number): Promise<boolean> {
  const grant = serverVersion >= 150000 ? sql`has_parameter_privilege('session_replication_role', 'SET')` : sql`false`;
  const { rows } = await sql<{ ok: boolean }>`
    select coalesce((select rolsuper from pg_roles where rolname = current_user), false) or ${grant} as ok`.execute(db);
  return rows[0]?.ok === true;
}

export async function useReplicaRole(tx: Tx): Promise<void> {
  await sql`set local session_replication_role = replica`.execute(tx);
}

/**
 * Undo finds an updated row again by its primary key, or in a table without one by its content and
 * the row version the update left (runs of earlier versions recorded none: by content alone). An
 * update that changed a primary-key column (a re-pointed key that is part of a join table's primary
 * key), or content that does not tell rows apart, leaves it nothing to find the row by: rather than
 * revert the wrong rows, or none while saying it did, undo names the table and refuses.
 */
async function unmatchedUpdates(db: Db | Tx, target: Target, slice: Slice): Promise<string | null> {
  const { table, backup } = target;
  const { rows } = await sql<{ column: string; n: string }>`
    select changed.col as column, count(*) as n
      from ${sql.id(BACKUP_SCHEMA, backup)} b, unnest(b._rd_columns) as changed(col)
     where ${inSlice(target, slice, 'b')} and b._rd_op = 'update'
     group by changed.col
     order by changed.col`.execute(db);
  if (!rows.length) return null;
  const updated = Number(rows.reduce((n, r) => Math.max(n, Number(r.n)), 0));
  if (!table.primaryKey) {
    const unknown = await unknownAfterImages(db, target, slice);
    if (unknown)
      return (
        `it has no primary key, and the repair could not tell ${unknown} updated row(s) apart from rows of other ` +
        `content (or found them no more: a trigger stamped them), so undo cannot know which rows to take back`
      );
    // Each updated row is told from the rest by the row version it was left with (undo/no-key.ts).
    if (target.rowVersions || (await tellApart(db, target, slice))) return null;
    return (
      `it has no primary key, and rows the run did not update hold the same values as updated ones in every column ` +
      `it did not change, so undo cannot tell the ${updated} updated row(s) apart from them`
    );
  }
  // A composite foreign key that shares a column with the primary key (tenant_id) is re-pointed
  // whole, yet that column keeps its value: every row found again by its key after the update
  // (all after-images taken) means no key changed.
  const keyColumns = rows.filter((r) => table.primaryKey!.includes(r.column));
  if (!keyColumns.length || target.afterImages) return null;
  return (
    `the run changed primary-key column(s) ${keyColumns.map((r) => r.column).join(', ')} of ` +
    `${Number(keyColumns[0]!.n).toLocaleString('en-US')} row(s), so undo cannot find them by their key`
  );
}

/** Backup rows of updates whose after-image the repair could not take (journal/backup-tables.ts, AFTER_UNKNOWN). */
async function unknownAfterImages(db: Db | Tx, target: Target, slice: Slice): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    select count(*) as n
      from ${sql.id(BACKUP_SCHEMA, target.backup)} b
     where ${inSlice(target, slice, 'b')} and b._rd_op = 'update' and b.${sql.id(AFTER)} = ${AFTER_UNKNOWN}`.execute(
    db,
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Without a primary key, undo finds an updated row by the columns the run did not change. That is
 * exact only while no other live row holds the same values in all of them: per set of changed
 * columns, no tuple of the unchanged ones may have more live rows than updated ones.
 */
async function tellApart(db: Db | Tx, target: Target, slice: Slice): Promise<boolean> {
  const { table, backup } = target;
  const sets = await sql<{ cols: string[] }>`
    select distinct _rd_columns as cols
      from ${sql.id(BACKUP_SCHEMA, backup)}
     where ${inSlice(target, slice)} and _rd_op = 'update'`.execute(db);
  for (const { cols } of sets.rows) {
    const columns = table.columns.filter((c) => !cols.includes(c.name) && !c.generated);
    if (!columns.length) return false;
    // A type without equality (json) is compared, and grouped, as text.
    const value = (alias: string | null, c: (typeof columns)[number]) => {
      const ref = alias ? sql.id(alias, c.name) : sql.id(c.name);
      return c.equality ? ref : sql`${ref}::text`;
    };
    const others = columns.map((c) => c.name);
    const same = sql.join(
      columns.map((c) => sql`${value('t', c)} is not distinct from g.${sql.id(c.name)}`),
      sql` and `,
    );
    const { rows } = await sql<{ n: string }>`
      select count(*) as n
        from (select ${sql.join(columns.map((c) => sql`${value(null, c)} as ${sql.id(c.name)}`))}, count(*) as backed
                from ${target.source} s
               where ${inSlice(target, slice)} and _rd_op = 'update' and _rd_columns = ${cols}::text[]
               group by ${sql.join(others.map((_, i) => sql.raw(String(i + 1))))}) g
       where (select count(*) from ${tableRef(table)} t where ${same}) > g.backed`.execute(db);
    if (Number(rows[0]?.n ?? 0) > 0) return false;
  }
  return true;
}

/**
 * What would keep the restore from being exact: triggers that would fire on the restored rows
 * (in replica mode only ENABLE ALWAYS / ENABLE REPLICA ones), and, without replica mode, NOT VALID
 * foreign keys of tables that get rows back.
 */
/** A backup table and the user table it belongs to. */
interface Target {
  table: Table;
  backup: string;
  /** How to read it: its columns of application types cast back (journal/typed-backup.ts). */
  source: Sql;
  batched: boolean;
  /** The table's columns its backup holds. */
  columns: Column[];
  /** Every update of the run found its row again by primary key after the update (conflicts.ts). */
  afterImages: boolean;
  /** Without a primary key: every update recorded the row version it left (conflicts.ts). */
  rowVersions: boolean;
}

export async function inexactTables(
  db: Db | Tx,
  targets: (Target & { restores: boolean })[],
  replica: boolean,
  slice: Slice,
): Promise<Inexact[]> {
  const out: Inexact[] = [];
  const firing = replica ? ['A', 'R'] : ['O', 'A'];
  for (const target of targets) {
    const { table, restores, backup } = target;
    const unmatched = await unmatchedUpdates(db, target, slice);
    if (unmatched)
      out.push({
        table: table.id,
        reason: unmatched,
        hint:
          `The rows as they were before the run are in ${BACKUP_SCHEMA}."${backup}" ` +
          `(_rd_run = '${slice.runId}'); restore them by hand.`,
      });
    const triggers = await sql<{ name: string }>`
      select tgname as name
        from pg_trigger
       where tgrelid = ${table.oid}::oid and not tgisinternal and tgenabled = any(${firing}::"char"[])
       order by 1`.execute(db);
    if (triggers.rows.length)
      out.push({
        table: table.id,
        reason: `trigger ${triggers.rows.map((t) => t.name).join(', ')} would fire on the restored rows`,
        hint: REPLICA_HINT,
      });
    if (restores) {
      const added = await addedWithoutValue(db, target);
      if (added.length)
        out.push({
          table: table.id,
          reason:
            `column ${added.join(', ')} was added since the repair, NOT NULL without a default: ` +
            'the deleted rows have no value for it',
          hint:
            `Give it a default (ALTER TABLE ${table.id} ALTER COLUMN … SET DEFAULT …) and run undo again: ` +
            'the restored rows then get it.',
        });
    }
    if (replica || !restores) continue;
    const keys = await sql<{ name: string }>`
      select conname as name
        from pg_constraint
       where conrelid = ${table.oid}::oid and contype = 'f' and not convalidated
       order by 1`.execute(db);
    if (keys.rows.length)
      out.push({
        table: table.id,
        reason: `NOT VALID foreign key ${keys.rows.map((k) => k.name).join(', ')} may reject rows it was added after`,
        hint: REPLICA_HINT,
      });
  }
  return out;
}

/**
 * Columns added to the table since the repair (so not in its backup) that a restored row cannot
 * leave to its default: NOT NULL without one (identity and generated columns fill themselves).
 */
async function addedWithoutValue(db: Db | Tx, target: Target): Promise<string[]> {
  const held = target.columns.map((c) => c.name);
  const { rows } = await sql<{ name: string }>`
    select attname as name
      from pg_attribute
     where attrelid = ${target.table.oid}::oid and attnum > 0 and not attisdropped
       and attnotnull and not atthasdef and attidentity = '' and attgenerated = ''
       and attname <> all(${held}::text[])
     order by attnum`.execute(db);
  return rows.map((r) => r.name);
}

/**
 * AFTER triggers (ordinary ones, which fired when the repair changed the table) may have changed
 * other tables — a comment counter on the post, an audit row. Undo restores the rows the repair
 * changed with triggers quiet, so those side effects stay: say so, per table, before it starts.
 */
export async function triggerSideEffects(db: Db | Tx, tables: Table[]): Promise<Warning[]> {
  const out: Warning[] = [];
  for (const table of tables) {
    // tgtype bit 1: BEFORE, bit 6: INSTEAD OF; neither is an AFTER trigger.
    const { rows } = await sql<{ name: string }>`
      select tgname as name
        from pg_trigger
       where tgrelid = ${table.oid}::oid
         and not tgisinternal
         and tgenabled in ('O', 'A')
         and tgtype & 66 = 0
       order by 1`.execute(db);
    if (rows.length)
      out.push({
        code: 'trigger',
        table: table.id,
        message:
          `trigger ${rows.map((r) => r.name).join(', ')} on ${table.id} fired when the repair changed it; ` +
          'whatever it changed elsewhere is not undone',
      });
  }
  return out;
}
