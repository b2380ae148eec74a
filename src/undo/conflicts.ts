import { sql } from 'kysely';
import type { Column, Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import { tableName, tableRef, type Sql } from '../sql/build.js';
import { AFTER, BATCH, keyText, keyTextAfterUpdate } from '../journal/backup-tables.js';
import { childrenLeftBehind, type ChildLink } from './children.js';
import { parentsMissing, type ParentLink } from './parents.js';

/**
 * Undo restores a row only where it still holds exactly what the repair left: a deleted row only
 * while its key is free, an updated row only while md5(row::text) equals the after-image the
 * repair recorded. Anything the application wrote since is left alone and reported as a conflict.
 */
export interface UndoTarget {
  table: Table;
  /** rowdoctor_backup table of `table`. */
  backup: string;
  /** How to read it: its columns of application types cast back (journal/typed-backup.ts). */
  source: Sql;
  /** Every update of this run recorded its after-image (runs of earlier versions did not). */
  afterImages: boolean;
  /**
   * A table without a primary key whose every update of this run recorded the row version (xmin) it
   * left (journal/backup-tables.ts, XMIN): undo tells the row by it from rows of the same content.
   */
  rowVersions: boolean;
  /** The backup table records each row's repair batch (BATCH; tables of earlier versions may not). */
  batched: boolean;
  /**
   * The table's columns its backup holds, in table order. A column added to the table since the
   * repair is not among them: restored rows get its default, and rows are compared without it.
   */
  columns: Column[];
  /**
   * Columns added to the table since the repair (stored ones the application writes: not generated,
   * not identity), with what the table gave the rows there when each was added (its missing value
   * as text; NULL when it had none).
   */
  added: { name: string; missing: string | null }[];
  /** Some update of the slice changed a row's primary key (undo/rekeyed.ts takes those back). */
  rekeyed: boolean;
  /** Valid foreign keys into its table: what points at a row it reverts (undo/children.ts). */
  children: ChildLink[];
  /** Its references: what a row it puts back names must be there (undo/parents.ts). */
  parents: ParentLink[];
  /** Deleted rows of the run left to restore. */
  restore: number;
}

/**
 * Which backup rows of a run an undo step takes back: all of them, or only those of some of the
 * repair's batches (`only`), or all but the batches an interrupted undo already took back (`except`).
 */
export interface Slice {
  runId: string;
  only?: string[];
  except?: string[];
}

/** The backup rows of `t` in slice `s` (columns qualified by `alias` when given). */
export function inSlice(t: { batched: boolean }, s: Slice, alias?: string): Sql {
  const c = (name: string) => (alias ? sql.id(alias, name) : sql.id(name));
  const parts = [sql`${c('_rd_run')} = ${s.runId}`];
  if (t.batched && s.only) parts.push(sql`${c(BATCH)} = any(${s.only}::bigint[])`);
  if (t.batched && s.except?.length) parts.push(sql`not coalesce(${c(BATCH)} = any(${s.except}::bigint[]), false)`);
  return sql.join(parts, sql` and `);
}

export interface ConflictSample {
  table: string;
  key: unknown[];
  reason: string;
}

export interface Conflicts {
  count: number;
  samples: ConflictSample[];
}

const backupOf = (t: Pick<UndoTarget, 'source'>) => t.source;

/**
 * The conflicts a dry-run query found: each row one, `n` the count of all of them (count(*) over ()),
 * the first `sample` with their key and `reason`.
 */
export function conflictsOf<R extends { key: unknown[]; n: string }>(
  t: Pick<UndoTarget, 'table'>,
  rows: R[],
  sample: number,
  reason: (row: R) => string,
): Conflicts {
  return {
    count: Number(rows[0]?.n ?? 0),
    samples: rows.slice(0, sample).map((r) => ({ table: t.table.id, key: r.key, reason: reason(r) })),
  };
}

/** Why an updated row stays as the repair left it (its key found, or not: `gone`). */
export function updateReason(r: { gone: boolean; reused: boolean; behind: boolean }): string {
  if (r.gone) return 'deleted since the repair';
  if (r.reused) return 'a row it pointed at before the repair is gone, or was written anew since';
  if (r.behind) return 'a row that points at it was changed since the repair';
  return 'changed since the repair';
}

/**
 * md5 of a live row's text over the columns the backup holds: what the repair's after-image
 * recorded (md5 of the whole row then), even where a column was added to the table since.
 */
export function rowImage(t: Pick<UndoTarget, 'table' | 'columns'>, alias: string): Sql {
  if (t.columns.length === t.table.columns.length) return sql`md5((${sql.id(alias)}.*)::text)`;
  return sql`md5(row(${sql.join(t.columns.map((c) => sql.id(alias, c.name)))})::text)`;
}

/** Row `a` and row `b` of `table` (live or backed up) have the same primary key. */
export function pkEquals(table: Table, a: string, b: string): Sql {
  return sql.join(
    table.primaryKey!.map((c) => sql`${sql.id(a, c)} = ${sql.id(b, c)}`),
    sql` and `,
  );
}

function pkList(table: Table, alias: string): Sql {
  return sql.join(table.primaryKey!.map((c) => sql.id(alias, c)));
}

/**
 * Per updated row (by primary key): its first backup in the slice (the row before the run's first
 * change), with the after-image of its last as `_rd_last` — one pass over the backup. (Two DISTINCT
 * ON subqueries joined by key were planned as a nested loop over both: 80 s for 20k rows.)
 */
export function firstWithLast(t: UndoTarget, slice: Slice): Sql {
  const pk = sql.join(t.table.primaryKey!.map((c) => sql.id(c)));
  return sql`
    (select distinct on (${pk}) *,
            last_value(${sql.id(AFTER)}) over (partition by ${pk} order by _rd_seq
                                               rows between unbounded preceding and unbounded following) as _rd_last
       from ${backupOf(t)} s  -- an alias: PostgreSQL before 16 needs one for a subquery
      where ${inSlice(t, slice)} and _rd_op = 'update'
      order by ${pk}, _rd_seq)`;
}

/**
 * Deleted rows that cannot come back: a row written since holds their primary key, or a row they
 * name is gone or was re-created since (undo/parents.ts).
 */
export async function deleteConflicts(db: Db | Tx, t: UndoTarget, slice: Slice, sample: number): Promise<Conflicts> {
  const pk = t.table.primaryKey;
  const taken = pk
    ? sql`exists (select 1 from ${tableRef(t.table)} x where ${pkEquals(t.table, 'x', 'b')})`
    : sql`false`;
  const missing = parentsMissing(t, slice.runId, 'b', 'plan');
  const key = pk ? sql`json_build_array(${pkList(t.table, 'b')})` : sql`json_build_array()`;
  const { rows } = await sql<{ key: unknown[]; taken: boolean; n: string }>`
    select ${key} as key, ${taken} as taken, count(*) over () as n
      from ${backupOf(t)} b
     where ${inSlice(t, slice, 'b')} and b._rd_op = 'delete'
       and (${taken} or ${missing})
     order by b._rd_seq`.execute(db);
  return conflictsOf(t, rows, sample, (r) =>
    r.taken
      ? 'a row written since the repair holds its primary key'
      : 'a row it points at is gone, or was written anew since the repair',
  );
}

/**
 * Updated rows the application changed or deleted since (rows the run itself deleted afterwards
 * are judged when restored: they must then match too).
 */
export async function updateConflicts(db: Db | Tx, t: UndoTarget, slice: Slice, sample: number): Promise<Conflicts> {
  if (!t.table.primaryKey || !t.afterImages) return { count: 0, samples: [] };
  const reused = parentsMissing(t, slice.runId, 'f', 'plan');
  const behind = childrenLeftBehind(t, 'x', 'f', slice.runId);
  const { rows } = await sql<{ key: unknown[]; gone: boolean; reused: boolean; behind: boolean; n: string }>`
    select json_build_array(${pkList(t.table, 'f')}) as key, (x.*) is null as gone, ${reused} as reused,
           ${behind} as behind, count(*) over () as n
      from ${firstWithLast(t, slice)} f
      left join ${tableRef(t.table)} x on ${pkEquals(t.table, 'x', 'f')}
     where ((x.*) is null or not (${holdsWhatRepairLeft(t, 'x', sql.id('f', '_rd_last'))}) or ${reused} or ${behind})
       and not exists (
         select 1 from ${backupOf(t)} d
          where ${inSlice(t, slice, 'd')} and d._rd_op = 'delete' and ${pkEquals(t.table, 'd', 'f')})
     order by ${pkList(t.table, 'f')}`.execute(db);
  return conflictsOf(t, rows, sample, updateReason);
}

/** Put deleted rows back where their key is still free; returns how many. */
export async function restoreFreeRows(tx: Tx, t: UndoTarget, slice: Slice): Promise<number> {
  const cols = sql.join(t.columns.filter((c) => !c.generated).map((c) => sql.id(c.name)));
  const free = t.table.primaryKey
    ? sql`not exists (select 1 from ${tableRef(t.table)} x where ${pkEquals(t.table, 'x', 'b')})`
    : sql`true`;
  const res = await sql`
    insert into ${tableName(t.table)} (${cols}) overriding system value
    select ${cols}
      from ${backupOf(t)} b
     where ${inSlice(t, slice, 'b')} and b._rd_op = 'delete' and ${free}
       and not (${parentsMissing(t, slice.runId, 'b', 'apply')})
     order by b._rd_seq`.execute(tx);
  return Number(res.numAffectedRows ?? 0);
}

/**
 * Every updated row that still holds what the repair left gets back its whole row as it was
 * before the run's first change (every column: a BEFORE trigger's stamp too); returns how many.
 */
export async function revertUnchangedRows(tx: Tx, t: UndoTarget, slice: Slice): Promise<number> {
  const pk = t.table.primaryKey!;
  const columns = t.columns.filter((c) => !c.generated && !pk.includes(c.name));
  if (!columns.length) return 0;
  const assignments = sql.join(columns.map((c) => sql`${sql.id(c.name)} = ${sql.id('b', c.name)}`));
  const { rows } = await sql<{ n: string }>`
    with back as (
      update ${tableRef(t.table)} x
         set ${assignments}
        from ${firstWithLast(t, slice)} b
       where ${pkEquals(t.table, 'x', 'b')}
         and ${holdsWhatRepairLeft(t, 'x', sql.id('b', '_rd_last'))}
         and not (${parentsMissing(t, slice.runId, 'b', 'apply')})
         and not ${childrenLeftBehind(t, 'x', 'b', slice.runId)}
      returning ${pkList(t.table, 'x')}, b._rd_seq)
    select count(*) as n from back r where not (${earlierUpdate(t, slice, 'r')})`.execute(tx);
  return Number(rows[0]?.n ?? 0);
}

/**
 * A row is counted once however many of the repair's batches updated it (two rules, say): where
 * the slice is some of the batches, by the one that takes it back to what it was before the run —
 * its earliest backup. True where the run backed the row up (alias `r`: its primary key, and
 * `_rd_seq`, the first backup in the slice) earlier, in a batch not taken back yet.
 */
function earlierUpdate(t: UndoTarget, slice: Slice, r: string): Sql {
  if (!t.batched || !slice.only) return sql`false`;
  const remaining: Slice = { runId: slice.runId, ...(slice.except ? { except: slice.except } : {}) };
  return sql`exists (
    select 1 from ${backupOf(t)} e
     where ${inSlice(t, remaining, 'e')} and e._rd_op = 'update' and e._rd_seq < ${sql.id(r, '_rd_seq')}
       and ${pkEquals(t.table, 'e', r)})`;
}

/**
 * The live row `x` still holds what the repair left, as the after-image `after` recorded it: the same
 * md5 over the columns the backup holds, and in each column added to the table since, what the
 * table gave the rows that were there when it was added (an application write there is a change).
 */
export function holdsWhatRepairLeft(t: UndoTarget, x: string, after: Sql): Sql {
  const added = t.added.map((c) =>
    c.missing === null
      ? sql`${sql.id(x, c.name)} is null`
      : sql`${sql.id(x, c.name)}::text is not distinct from ${c.missing}::text`,
  );
  return sql.join([sql`${rowImage(t, x)} = ${after}`, ...added], sql` and `);
}

/**
 * The rows as undo would write them (plan time): deleted rows it would restore, and the first image
 * of each updated row it would revert; every column of the table (`reverted` on its own too).
 */
function undoImages(t: UndoTarget, slice: Slice): { back: Sql; reverted: Sql; reverts: boolean } {
  // A column added since the repair: not in the backup (a restored row gets its default; NULL here).
  const held = new Set(t.columns.map((c) => c.name));
  const cols = sql.join(
    t.table.columns.map((c) =>
      held.has(c.name) ? sql.id('b', c.name) : sql`cast(null as ${sql.raw(c.type)}) as ${sql.id(c.name)}`,
    ),
  );
  const pk = t.table.primaryKey;
  const restored = sql`
    select ${cols}
      from ${backupOf(t)} b
     where ${inSlice(t, slice, 'b')} and b._rd_op = 'delete'
       and not (${parentsMissing(t, slice.runId, 'b', 'plan')})
       ${pk ? sql`and not exists (select 1 from ${tableRef(t.table)} x where ${pkEquals(t.table, 'x', 'b')})` : sql``}`;
  const reverts = Boolean(pk && t.afterImages);
  // The first image of each updated row that still holds what the repair left (re-keyed rows: of
  // each chain of updates, whether it still does or not).
  const reverted = t.rekeyed
    ? sql`select ${cols} from ${backupOf(t)} b
           where ${inSlice(t, slice, 'b')} and b._rd_op = 'update' and ${chainHeads(t, slice, 'b')}`
    : reverts
      ? sql`
    select ${cols}
      from ${firstWithLast(t, slice)} b
      join ${tableRef(t.table)} x on ${pkEquals(t.table, 'x', 'b')}
     where ${holdsWhatRepairLeft(t, 'x', sql.id('b', '_rd_last'))}
       and not (${parentsMissing(t, slice.runId, 'b', 'plan')})`
      : sql`select ${cols} from ${backupOf(t)} b where false`;
  const back = reverts ? sql`${restored} union all ${reverted}` : restored;
  return { back, reverted, reverts };
}

/**
 * CHECK constraints and NOT NULL columns (added since the repair, or NOT VALID ones, which still
 * bind every row written) that rows as undo would write them break: decided before the first batch
 * commits, so an undo never stops half-way on one. A CHECK on a column the backup lacks is left to
 * --apply. Returns one line per constraint broken.
 */
export async function checkViolations(db: Db | Tx, t: UndoTarget, slice: Slice): Promise<string[]> {
  const out: string[] = [];
  const { back } = undoImages(t, slice);
  const held = t.columns.map((c) => c.name);
  const checks = await sql<{ name: string; expr: string; def: string }>`
    select c.conname as name, pg_get_expr(c.conbin, c.conrelid) as expr, pg_get_constraintdef(c.oid) as def
      from pg_constraint c
     where c.conrelid = ${t.table.oid}::oid and c.contype = 'c'
       and not exists (
         select 1 from pg_attribute a
          where a.attrelid = c.conrelid and a.attnum = any(c.conkey) and a.attname <> all(${held}::text[]))
     order by 1`.execute(db);
  const notNull = t.columns.filter((c) => c.notNull);
  const tests = [
    ...checks.rows.map((c) => ({
      what: `CHECK constraint ${c.name} (${c.def})`,
      broken: sql`(${sql.raw(c.expr)}) is false`,
    })),
    ...notNull.map((c) => ({ what: `NOT NULL on column ${c.name}`, broken: sql`${sql.id(c.name)} is null` })),
  ];
  for (const test of tests) {
    const { rows } = await sql<{ n: string }>`select count(*) as n from (${back}) t where ${test.broken}`.execute(db);
    const n = Number(rows[0]?.n ?? 0);
    if (n) out.push(`${t.table.id}: ${n.toLocaleString('en-US')} row(s) would break ${test.what}`);
  }
  return out;
}

/**
 * Unique keys (other than the primary key, which restoreFreeRows checks row by row) that the rows
 * as undo would leave them break: restored rows and reverted rows against each other and against
 * the live rows — a unique index added since the repair, or a key the application took meanwhile.
 * Each index's parts and predicate are evaluated by the server, as the index does. Decided before
 * the first batch commits, so an undo never stops half-way on it. Returns one line per index broken.
 */
export async function uniqueCollisions(db: Db | Tx, t: UndoTarget, slice: Slice): Promise<string[]> {
  const out: string[] = [];
  const indexes = t.table.uniqueIndexes.filter((i) => i.valid && !i.primary);
  if (!indexes.length) return out;
  const { back, reverted, reverts } = undoImages(t, slice);
  const notReverted = reverts
    ? sql`and not exists (select 1 from (${reverted}) r where ${pkEquals(t.table, 'r', 't')})`
    : sql``;
  for (const index of indexes) {
    const parts = index.parts.map((p) => sql.raw(p));
    const predicate = index.predicate ? sql.raw(index.predicate) : sql`true`;
    const u = parts.map((_, i) => sql.id(`u${i}`));
    const keyParts = sql.join(parts.map((p, i) => sql`${p} as ${u[i]!}`));
    const nonNull = index.nullsNotDistinct
      ? sql`true`
      : sql.join(
          u.map((c) => sql`${c} is not null`),
          sql` and `,
        );
    const keyOf = sql.join(u.map((c) => sql`k.${c}`));
    const same = index.nullsNotDistinct
      ? sql`exists (select 1 from keys k where (${keyOf}) is not distinct from (${sql.join(parts)}))`
      : sql`(${sql.join(parts)}) in (select ${sql.join(u)} from keys)`;
    const { rows } = await sql<{ n: string }>`
      with keys as (
        select * from (select ${keyParts} from (${back}) t where ${predicate}) k where ${nonNull}
      ),
      live as (
        select ${keyParts} from ${tableRef(t.table)} t where ${predicate} and ${same} ${notReverted}
      )
      select count(*) as n
        from (select 1
                from (select * from keys union all select * from live) a
               group by ${sql.join(u)}
              having count(*) > 1) d`.execute(db);
    const n = Number(rows[0]?.n ?? 0);
    if (n)
      out.push(
        `${t.table.id}: ${n.toLocaleString('en-US')} key(s) of unique index ${index.name} would be held twice ` +
          `(${index.definition})`,
      );
  }
  return out;
}

/**
 * The first update of each chain of updates of a row in the slice (alias `b`): no earlier update
 * of the slice left the row with the key `b` found it with.
 */
export function chainHeads(t: Pick<UndoTarget, 'table' | 'source' | 'batched'>, slice: Slice, b: string): Sql {
  return sql`not exists (
    select 1 from ${backupOf(t)} e
     where ${inSlice(t, slice, 'e')} and e._rd_op = 'update' and e._rd_seq < ${sql.id(b, '_rd_seq')}
       and ${keyTextAfterUpdate(t.table, 'e')} = ${keyText(t.table, b)})`;
}
