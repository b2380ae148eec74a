import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import { and, col, tableRef, type Sql } from '../sql/build.js';
import { backupRows, recordAfterImages } from './backup.js';
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
  const assignments = sql.join(set.map((s) => sql`${sql.id(s.column)} = ${s.value}`));
  const { affected } = await run(ctx, sql`update ${tableRef(table)} t set ${assignments} where ${where}`, 'write');
  await recordAfterImages(ctx, table);
  return affected;
}

/** Some row still points at `t` through a foreign key or a declared/inferred reference. */
export function stillReferenced(ctx: BatchContext, table: Table): Sql {
  const refs = referencesInto(ctx.catalog, table, ctx.declared, ctx.infer);
  if (!refs.length) return sql`false`;
  return sql`(${sql.join(
    refs.map(
      (r) =>
        sql`exists (select 1
                      from ${tableRef(r.child)} x
                     where ${and(r.columns.map((c, i) => sql`${col('x', c)} = ${col('t', r.parentColumns[i]!)}`))})`,
    ),
    sql` or `,
  )})`;
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
  const free = ctx.nextTemp();
  const pk = pkOf(table).map((_, i) => sql.id(`l${i}`));
  await run(
    ctx,
    sql`create temp table ${free} on commit drop as
    select ${sql.join(pk)} from ${targets} m join ${tableRef(table)} t on ${pkMatches(table, 't', 'm', 'l')}
     where not ${stillReferenced(ctx, table)}`,
    'plan',
  );
  const kept = sql`select distinct m.n from ${targets} m
     where not exists (select 1 from ${free} f where ${and(pk.map((c) => sql`f.${c} = m.${c}`))})`;
  if (!(await count(ctx, kept))) return { free, skippedGroups: 0, reason: undefined };
  const reason = why(await whatReferences(ctx, table, targets));
  return { free, skippedGroups: await recordSkipped(ctx, kept, reason), reason };
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
