import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { OrphanRule } from '../rules/types.js';
import { and, col, isAlive, tableRef, type Sql } from '../sql/build.js';
import { currentShadows } from '../sql/shadow.js';
import type { WorkTable } from '../sql/work-table.js';
import { BACKUP_SCHEMA } from '../journal/backup-tables.js';
import { currentMergeMap, notUndone, SHADOW_MERGES } from '../journal/merge-map.js';
import { pkMatches, run, type BatchContext } from './context.js';

/**
 * A merge's side of the merge map (journal/merge-map.ts): whom each deleted loser was merged into,
 * and the orphans whose parent lives on as a survivor, which are re-pointed there rather than deleted.
 */

/** Before the losers listed in `map` (l0… → s0…) are deleted: remember whom each was merged into. */
export async function recordMerges(ctx: BatchContext, table: Table, map: WorkTable): Promise<void> {
  if (!ctx.backup) return;
  await run(
    ctx,
    sql`
    insert into ${currentMergeMap()} (run_id, table_schema, table_name, loser, survivor)
    select ${ctx.runId}, ${table.schema}, ${table.name}, to_jsonb(lx.*), to_jsonb(sx.*)
      from ${map} m
      join ${tableRef(table)} lx on ${pkMatches(table, 'lx', 'm', 'l')}
      join ${tableRef(table)} sx on ${pkMatches(table, 'sx', 'm', 's')}`,
    // A dry run writes its own map in pg_temp (sql/shadow.ts), never rowdoctor_backup.
    ctx.apply ? 'backup' : 'write',
  );
}

/**
 * The orphans of `rows` (listed by primary key l0…) whose key is a merged-away row of the parent
 * whose survivor is still alive: a temp table of their primary key and the survivor's values of
 * the referenced columns (v0…). The latest merge of a key wins; a survivor merged away since (in a
 * later run, or earlier in this one) is followed to its own survivor; merges of a run since undone
 * do not count.
 */
export async function redirectable(ctx: BatchContext, rule: OrphanRule, rows: WorkTable): Promise<WorkTable | null> {
  const shadowed = currentShadows() !== undefined;
  const name = shadowed ? `pg_temp.${SHADOW_MERGES}` : `${BACKUP_SCHEMA}.merges`;
  const exists = await run<{ ok: boolean }>(ctx, sql`select to_regclass(${name}) is not null as ok`, 'read');
  if (!exists.rows[0]?.ok) return null;
  const child = rule.table;
  const parent = rule.parent;
  const types = rule.parentColumns.map((pc) => parent.columns.find((c) => c.name === pc)!.type);
  const v = (i: number) => sql.id(`v${i}`);
  const vs = sql.join(rule.parentColumns.map((_, i) => v(i)));
  const loserHolds = (value: (i: number) => Sql) =>
    and(rule.parentColumns.map((pc, i) => sql`m.loser ->> ${pc} = ${value(i)}::text`));
  const survivorValues = sql.join(
    rule.parentColumns.map((pc, i) => sql`(m.survivor ->> ${pc})::${sql.raw(types[i]!)} as ${v(i)}`),
  );
  // The copy a dry run reads holds only the merges that count (createShadowMergeMap).
  const counts = shadowed ? sql`true` : notUndone('m');
  const latest = (holds: Sql, after: Sql) => sql`
    select ${survivorValues}, m.seq
      from ${currentMergeMap()} m
     where m.table_schema = ${parent.schema} and m.table_name = ${parent.name} and ${holds} and ${after}
       and ${counts}
     order by m.seq desc
     limit 1`;
  const alive = parent.softDelete ? sql`and ${isAlive(parent.softDelete, 'p')}` : sql``;
  const target = ctx.nextTemp();
  await run(
    ctx,
    sql`
    create temp table ${target} on commit drop as
    select ${sql.join(child.primaryKey!.map((_, i) => sql.id(`l${i}`)))},
           ${sql.join(rule.parentColumns.map((_, i) => sql`s.${v(i)}`))}
      from ${rows} r
      join ${tableRef(child)} t on ${pkMatches(child, 't', 'r', 'l')}
      cross join lateral (
        with recursive chain as (
          select ${vs}, seq, 0 as d
            from (${latest(
              loserHolds((i) => col('t', rule.columns[i]!)),
              sql`true`,
            )}) first
          union all
          select ${sql.join(rule.parentColumns.map((_, i) => sql`nx.${v(i)}`))}, nx.seq, c.d + 1
            from chain c
            cross join lateral (${latest(
              loserHolds((i) => sql`c.${v(i)}`),
              sql`m.seq > c.seq`,
            )}) nx
           where c.d < 16
        )
        select ${vs} from chain order by d desc limit 1
      ) s
     where exists (
       select 1
         from ${tableRef(parent)} p
        where ${and(rule.parentColumns.map((pc, i) => sql`${col('p', pc)} = s.${v(i)}`))} ${alive}
     )`,
    'plan',
  );
  return target;
}
