import { sql } from 'kysely';
import type { Table, UniqueIndex } from '../catalog/types.js';
import { and, col, tableRef, type Sql } from '../sql/build.js';
import type { WorkTable } from '../sql/work-table.js';
import { pkMatches, pkOf, run, type BatchContext } from './context.js';
import { referencesInto, type Reference } from './references.js';

/*
 * Rows that follow re-pointed ones: a child whose composite foreign key shares a column with the
 * key a merge re-points takes the new values in the same statement, and so on down.
 */

/** The references into `table` whose rows take the new `values` with it (see dependentSteps). */
export function sharingRefs(ctx: BatchContext, table: Table, values: Map<string, Sql>): Reference[] {
  return referencesInto(ctx.catalog, table, ctx.declared, ctx.infer).filter(
    (ref) =>
      ref.onUpdate &&
      ref.onUpdate !== 'r' &&
      ref.child.id !== table.id &&
      ref.parentColumns.some((pc) => values.has(pc)),
  );
}

/**
 * A row under a sharing key that names a deferred loser (`losers`: l0… → s0…) takes, besides the
 * re-pointed column, its survivor's values of the key's other columns: edge(source_job_id = 2,
 * workflow_id = 2) becomes (1, 1) when job 2 merges into job 1 of workflow 1. In the update, `d`
 * is the row as it was.
 */
export function mapToSurvivors(
  table: Table,
  losers: WorkTable,
  sharing: Reference[],
  values: Map<string, Sql>,
  steps: Step[],
): void {
  for (const ref of sharing) {
    const step = steps.find((s) => s.table.id === ref.child.id);
    if (!step) continue;
    const holds = and(ref.columns.map((c, j) => sql`${col('lx', ref.parentColumns[j]!)} = ${col('d', c)}`));
    ref.columns.forEach((c, i) => {
      const pc = ref.parentColumns[i]!;
      if (values.has(pc) || step.set.has(c)) return;
      step.set.set(
        c,
        sql`coalesce((select ${col('sx', pc)}
                        from ${losers} m
                        join ${tableRef(table)} lx on ${pkMatches(table, 'lx', 'm', 'l')}
                        join ${tableRef(table)} sx on ${pkMatches(table, 'sx', 'm', 's')}
                       where ${holds}), ${col('d', c)})`,
      );
    });
    step.columns = [...step.set.keys()];
  }
}

/** A table whose rows follow re-pointed ones through composite foreign keys. */
export interface Step {
  table: Table;
  /** The columns this step changes and their new values (expressions over the refmap `r`). */
  columns: string[];
  set: Map<string, Sql>;
  /** The table's row under `alias` is reached from a row of the refmap `r` (an EXISTS over the chain). */
  reached: (alias: string) => Sql;
}

/**
 * Foreign keys into `table` that share a column its update changes (`values`): their rows take the
 * new values in the same statement, and so on down. `reach` are the FROM items of the chain so far
 * (ending in `table` as `alias`) and `base` ties it to the refmap `r`. A key ON UPDATE RESTRICT is
 * left out: the server then refuses the group, and it is skipped with that key as its reason.
 */
export function dependentSteps(
  ctx: BatchContext,
  table: Table,
  values: Map<string, Sql>,
  reach: Sql,
  base: Sql,
  alias: string,
  depth = 0,
): Step[] {
  if (depth > 8) return [];
  const steps: Step[] = [];
  for (const ref of referencesInto(ctx.catalog, table, ctx.declared, ctx.infer)) {
    if (!ref.onUpdate || ref.onUpdate === 'r' || ref.child.id === table.id) continue;
    const set = new Map<string, Sql>();
    ref.columns.forEach((c, i) => {
      const v = values.get(ref.parentColumns[i]!);
      if (v) set.set(c, v);
    });
    if (!set.size) continue;
    const link = (a: string) =>
      and(ref.columns.map((c, i) => sql`${col(a, c)} = ${col(alias, ref.parentColumns[i]!)}`));
    const own = `c${depth + 1}_${steps.length}`;
    steps.push({
      table: ref.child,
      columns: [...set.keys()],
      set,
      reached: (a) => sql`exists (select 1 from ${reach} where ${base} and ${link(a)})`,
    });
    const next = sql`${reach} join ${tableRef(ref.child)} ${sql.id(own)} on ${link(own)}`;
    steps.push(...dependentSteps(ctx, ref.child, set, next, base, own, depth + 1));
  }
  return steps;
}

/** One update per table: a row reached through two keys (source and target job) moves once. */
export function mergeSteps(steps: Step[]): Step[] {
  const byTable = new Map<string, Step>();
  for (const step of steps) {
    const seen = byTable.get(step.table.id);
    if (!seen) {
      byTable.set(step.table.id, { ...step, set: new Map(step.set) });
      continue;
    }
    for (const [c, v] of step.set) if (!seen.set.has(c)) seen.set.set(c, v);
    seen.columns = [...seen.set.keys()];
    const [a, b] = [seen.reached, step.reached];
    seen.reached = (alias) => sql`(${a(alias)} or ${b(alias)})`;
  }
  return [...byTable.values()];
}

/**
 * Rows of a dependent step that would collide, once moved, with a sibling under one of their
 * table's own unique keys (workflow_edges(source_trigger_id, target_trigger_id): a copy's edge
 * between two triggers merged into the survivor's becomes the survivor's own edge): a map (l0… → s0…)
 * per such key, the sibling already in place surviving, else the lowest key, for the caller to merge
 * before the statement moves the rest. Keys of plain columns, not partial, NULLs distinct; others
 * are left to the server (a collision then skips the group with that key as its reason).
 */
export async function stepCollisions(
  ctx: BatchContext,
  step: Step,
  refmap: WorkTable,
  index: UniqueIndex,
): Promise<WorkTable> {
  const table = step.table;
  const pk = pkOf(table);
  const cols = index.columns as string[];
  const u = cols.map((_, i) => sql.id(`u${i}`));
  const p = pk.map((_, i) => sql.id(`p${i}`));
  const after = cols.map((c, i) => sql`${step.set.get(c) ?? col('d', c)} as ${u[i]!}`);
  const name = ctx.nextTemp();
  await run(
    ctx,
    sql`create temp table ${name} on commit drop as
    with moved as (
      select distinct on (${sql.join(pk.map((c) => col('d', c)))})
             ${sql.join(pk.map((c, i) => sql`${col('d', c)} as ${p[i]!}`))}, ${sql.join(after)}
        from ${tableRef(table)} d, ${refmap} r
       where ${step.reached('d')}
    ),
    in_place as (
      select ${sql.join(pk.map((c, i) => sql`${col('t', c)} as ${p[i]!}`))},
             ${sql.join(cols.map((c, i) => sql`${col('t', c)} as ${u[i]!}`))}
        from ${tableRef(table)} t
       where (${sql.join(cols.map((c) => col('t', c)))}) in (select ${sql.join(u)} from moved)
         and not exists (select 1 from moved mv where ${and(pk.map((c, i) => sql`mv.${p[i]!} = ${col('t', c)}`))})
    ),
    candidates as (
      select ${sql.join(p)}, ${sql.join(u)}, 1 as prio from moved where ${and(u.map((x) => sql`${x} is not null`))}
      union all
      select ${sql.join(p)}, ${sql.join(u)}, 0 from in_place
    ),
    ranked as (
      select ${sql.join(p)}, ${sql.join(p.map((x, i) => sql`first_value(${x}) over w as ${sql.id(`s${i}`)}`))}
        from candidates
      window w as (partition by ${sql.join(u)} order by prio, ${sql.join(p)})
    )
    select ${sql.join(p.map((x, i) => sql`${x} as ${sql.id(`l${i}`)}`))},
           ${sql.join(pk.map((_, i) => sql.id(`s${i}`)))}
      from ranked
     where (${sql.join(p)}) is distinct from (${sql.join(pk.map((_, i) => sql.id(`s${i}`)))})`,
    'plan',
  );
  return name;
}

/** The unique keys stepCollisions can weigh for `step`: plain columns, one of them moved, not partial. */
export function stepKeys(step: Step): UniqueIndex[] {
  return step.table.uniqueIndexes.filter(
    (i) =>
      i.valid &&
      !i.predicate &&
      !i.nullsNotDistinct &&
      i.columns.every((c) => c !== null) &&
      i.columns.some((c) => c !== null && step.set.has(c)),
  );
}
