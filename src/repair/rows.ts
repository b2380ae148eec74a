import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { and, col, tableRef, type Sql } from '../sql/build.js';
import { backupCascades, backupRows, recordAfterImages } from './backup.js';
import { count, pkMatches, pkOf, run, type BatchContext } from './context.js';
import { referencesInto } from './references.js';
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
 * No row points at `t` any more, through any foreign key (whatever its ON DELETE action) or
 * declared/inferred reference. One NOT EXISTS per reference, ANDed at the top, so the planner
 * can run each as an anti-join rather than a subquery per row.
 */
export function unreferencedRow(ctx: BatchContext, table: Table): Sql {
  const refs = referencesInto(ctx.catalog, table, ctx.declared, ctx.infer);
  if (!refs.length) return sql`true`;
  return and(
    refs.map((r) => {
      const pointsAtT = and(r.columns.map((c, i) => sql`${col('x', c)} = ${col('t', r.parentColumns[i]!)}`));
      return sql`not exists (select 1
                               from ${tableRef(r.child)} x
                              where ${pointsAtT})`;
    }),
  );
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
 * `targets` lists rows by primary key (l0 …) with their group number `n`; the groups that keep at
 * least one row because something still points at it are recorded as skipped (recordSkipped), for
 * `why(referencedBy)`, where referencedBy names what points at them: table, reference and how many
 * of the kept rows each holds.
 */
export async function unreferenced(
  ctx: BatchContext,
  table: Table,
  targets: WorkTable,
  why: (referencedBy: string) => string,
): Promise<{ free: WorkTable; skippedGroups: number; reason: string | undefined }> {
  const free = await provenUnreferenced(ctx, table, targets);
  const pk = pkOf(table).map((_, i) => sql.id(`l${i}`));
  const kept = sql`select distinct m.n from ${targets} m
     where not exists (select 1 from ${free} f where ${and(pk.map((c) => sql`f.${c} = m.${c}`))})`;
  if (!(await count(ctx, kept))) return { free, skippedGroups: 0, reason: undefined };
  const reason = why(await whatReferences(ctx, table, targets));
  return { free, skippedGroups: await recordSkipped(ctx, kept, reason), reason };
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
  const heldGroups = sql`select distinct n from ${held}`;
  if (!(await count(ctx, heldGroups))) return { skipped: 0 };
  const by = await whatReferences(ctx, table, held);
  const reason = `losers kept: still referenced after re-pointing by ${by}; run again to merge them`;
  return { skipped: await recordSkipped(ctx, heldGroups, reason), reason };
}

/** "public.token_use (foreign key token_use_token_id_fkey: 1 row)": who holds the listed rows. */
async function whatReferences(ctx: BatchContext, table: Table, targets: WorkTable): Promise<string> {
  const held: string[] = [];
  for (const r of referencesInto(ctx.catalog, table, ctx.declared, ctx.infer)) {
    const points = and(r.columns.map((c, i) => sql`${col('x', c)} = ${col('t', r.parentColumns[i]!)}`));
    const n = await count(
      ctx,
      sql`
      select 1
        from ${targets} m
        join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'l')}
       where exists (select 1 from ${tableRef(r.child)} x where ${points})`,
    );
    if (n) held.push(`${r.child.id} (${r.via}: ${n.toLocaleString('en-US')} ${n === 1 ? 'row' : 'rows'})`);
  }
  return held.join(', ');
}
