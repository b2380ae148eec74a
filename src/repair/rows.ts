import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { and, liveTableRef, tableRef, type Sql } from '../sql/build.js';
import { backupCascades, backupRows, recordAfterImages } from './backup.js';
import { count, pkMatches, pkOf, run, type BatchContext } from './context.js';
import { pointsAt, referencesInto, unconfirmedInto, type Reference } from './references.js';
import type { WorkTable } from '../sql/work-table.js';
import { recordSkipped } from './groups.js';

/** `t` is one of the rows listed (by primary key l0..) in the temp table `targets`. */
export function listedIn(table: Table, targets: WorkTable): Sql {
  return sql`exists (select 1 from ${targets} m where ${pkMatches(table, 't', 'm', 'l')})`;
}

/** Backup, then update the listed rows (in a dry run: the copies, sql/shadow.ts). */
export async function updateRows(
  ctx: BatchContext,
  table: Table,
  targets: WorkTable,
  set: { column: string; value: Sql }[],
): Promise<number> {
  const where = listedIn(table, targets);
  if (ctx.backup)
    await backupRows(
      ctx,
      table,
      'update',
      where,
      set.map((s) => s.column),
    );
  const cascaded = await backupCascades(
    ctx,
    table,
    where,
    set.map((s) => s.column),
  );
  const assignments = sql.join(set.map((s) => sql`${sql.id(s.column)} = ${s.value}`));
  const { affected } = await run(ctx, sql`update ${tableRef(table)} t set ${assignments} where ${where}`, 'write');
  for (const t of [table, ...cascaded]) await recordAfterImages(ctx, t);
  return affected;
}

/**
 * No row points at `t` any more, through any foreign key (whatever its ON DELETE action),
 * declared/inferred reference, or candidate pair the data did not support (unconfirmedInto). One
 * NOT EXISTS per reference, ANDed at the top, so the planner can run each as an anti-join rather
 * than a subquery per row.
 */
export function unreferencedRow(ctx: BatchContext, table: Table): Sql {
  const refs = askedBeforeDelete(ctx, table);
  if (!refs.length) return sql`true`;
  return and(
    refs.map((r) => {
      return sql`not exists (select 1
                               from ${childRows(r)} x
                              where ${pointsAt(r, 'x', 't')})`;
    }),
  );
}

/** Every reference a delete from `table` must find empty: the followed ones and the unconfirmed. */
export function askedBeforeDelete(ctx: BatchContext, table: Table): Reference[] {
  return [
    ...referencesInto(ctx.catalog, table, ctx.declared, ctx.infer),
    ...unconfirmedInto(ctx.catalog, table, ctx.declared, ctx.infer),
  ];
}

/**
 * The rows of a reference's child. An unconfirmed candidate's are read where they are, also in a
 * dry run: its copies hold only the rows the followed references reach.
 */
export function childRows(r: Reference): Sql {
  return r.unconfirmed ? liveTableRef(r.child) : tableRef(r.child);
}

/**
 * The listed rows (every column of `targets`, l0 … the primary key) that nothing references, as a
 * new temp table: proven under the batch's lock, right before they are deleted.
 */
export async function provenUnreferenced(ctx: BatchContext, table: Table, targets: WorkTable): Promise<WorkTable> {
  // Lock them first (rows merged away at depth are not locked yet), then prove in a statement of its
  // own: its snapshot sees every row committed while the lock was awaited, and a new row pointing
  // at a locked row through a foreign key waits for this transaction — so the delete that follows
  // never fires an ON DELETE action.
  if (ctx.apply)
    await run(
      ctx,
      sql`select 1
      from ${targets} m
      join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'l')}
       for update of t`,
      'plan',
    );
  const free = ctx.nextTemp();
  await run(
    ctx,
    sql`create temp table ${free} on commit drop as
    select m.* from ${targets} m join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'l')}
     where ${unreferencedRow(ctx, table)}`,
    'plan',
  );
  return free;
}

/**
 * Split listed rows into those still referenced (left alone) and the rest (a new temp table).
 * `targets` lists rows by primary key (l0 …) with their group number `n`. A group that keeps at
 * least one row because something still points at it is skipped whole — none of its rows is in the
 * rest — and recorded (recordSkipped) for `why(referencedBy)`, where referencedBy names what points
 * at that group's own rows: table, reference and how many of its kept rows each holds.
 */
export async function unreferenced(
  ctx: BatchContext,
  table: Table,
  targets: WorkTable,
  why: (referencedBy: string) => string,
): Promise<{ free: WorkTable; skippedGroups: number; reason: string | undefined }> {
  const proven = await provenUnreferenced(ctx, table, targets);
  const pk = pkOf(table).map((_, i) => sql.id(`l${i}`));
  const keptRows = ctx.nextTemp();
  await run(
    ctx,
    sql`create temp table ${keptRows} on commit drop as
    select m.* from ${targets} m
     where not exists (select 1 from ${proven} f where ${and(pk.map((c) => sql`f.${c} = m.${c}`))})`,
    'plan',
  );
  if (!(await count(ctx, sql`select 1 from ${keptRows}`))) return { free: proven, skippedGroups: 0, reason: undefined };
  const free = ctx.nextTemp();
  await run(
    ctx,
    sql`create temp table ${free} on commit drop as
    select f.* from ${proven} f where not exists (select 1 from ${keptRows} k where k.n = f.n)`,
    'plan',
  );
  const { skipped, reason } = await skipReferenced(ctx, table, keptRows, why);
  return { free, skippedGroups: skipped, reason };
}

/**
 * After a merge (apply): the groups of `map` (n, l0 …) whose loser is still there because the
 * proof before the delete found something pointing at it — a row the application wrote for the
 * loser while the batch ran, through a reference the database does not enforce. The next run
 * merges them.
 */
export async function heldLosers(
  ctx: BatchContext,
  table: Table,
  map: WorkTable,
  refused: number[] = [],
): Promise<{ skipped: number; reason?: string }> {
  if (!ctx.apply) return { skipped: 0 };
  // Groups the server refused are rolled back, losers and all: they are reported as refused.
  const held = ctx.nextTemp();
  await run(
    ctx,
    sql`create temp table ${held} on commit drop as
    select m.*
      from ${map} m
      join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'l')}
     where not (m.n = any(${refused}::bigint[]))`,
    'plan',
  );
  if (!(await count(ctx, sql`select distinct n from ${held}`))) return { skipped: 0 };
  return skipReferenced(
    ctx,
    table,
    held,
    (by) => `losers kept: still referenced after re-pointing by ${by}; run again to merge them`,
  );
}

/**
 * Record every group of `kept` (rows listed by l0 … with their group `n`, each left in place) as
 * skipped, each with what points at its own rows: `why("public.post (foreign key …: 2 rows)")`.
 * Returns how many groups, and one line for the batch's notes: what points at any of them.
 */
async function skipReferenced(
  ctx: BatchContext,
  table: Table,
  kept: WorkTable,
  why: (referencedBy: string) => string,
): Promise<{ skipped: number; reason: string }> {
  const byGroup = new Map<string, string[]>();
  const overall: string[] = [];
  // What to do about an unconfirmed candidate that holds a group's rows, after why they stay.
  const hintsOf = new Map<string, Set<string>>();
  const allHints = new Set<string>();
  for (const r of askedBeforeDelete(ctx, table)) {
    const points = pointsAt(r, 'x', 't');
    const { rows } = await run<{ n: string; k: string }>(
      ctx,
      sql`
      select m.n, count(*) as k
        from ${kept} m
        join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'l')}
       where exists (select 1 from ${childRows(r)} x where ${points})
       group by m.n`,
      'read',
    );
    const by = (n: number) => `${r.child.id} (${r.via}: ${n.toLocaleString('en-US')} ${n === 1 ? 'row' : 'rows'})`;
    for (const row of rows) byGroup.set(row.n, [...(byGroup.get(row.n) ?? []), by(Number(row.k))]);
    if (r.unconfirmed)
      for (const row of rows) {
        hintsOf.set(row.n, (hintsOf.get(row.n) ?? new Set()).add(r.unconfirmed));
        allHints.add(r.unconfirmed);
      }
    const total = rows.reduce((n, row) => n + Number(row.k), 0);
    if (total) overall.push(by(total));
  }
  // A group whose reference went away after the proof (it still keeps its rows this time).
  const fallback = 'a row that pointed at them when they were checked';
  const groups = await run<{ n: string }>(ctx, sql`select distinct n from ${kept} order by n`, 'read');
  const byReason = new Map<string, string[]>();
  for (const { n } of groups.rows) {
    const reason = withHints(why(byGroup.get(n)?.join(', ') ?? fallback), hintsOf.get(n));
    byReason.set(reason, [...(byReason.get(reason) ?? []), n]);
  }
  let skipped = 0;
  for (const [reason, ns] of byReason)
    skipped += await recordSkipped(ctx, sql`select unnest(${sql.val(ns)}::bigint[]) as n`, reason);
  return { skipped, reason: withHints(why(overall.join(', ') || fallback), allHints) };
}

function withHints(reason: string, hints: Set<string> | undefined): string {
  return hints?.size ? `${reason}: ${[...hints].join('; ')}` : reason;
}
