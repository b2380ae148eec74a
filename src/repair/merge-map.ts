import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import type { OrphanRule } from '../rules/types.js';
import { and, col, isAlive, tableRef, type Sql } from '../sql/build.js';
import type { WorkTable } from '../sql/work-table.js';
import { BACKUP_SCHEMA } from './backup.js';
import { pkMatches, run, type BatchContext } from './context.js';

/**
 * The merge map: every loser a merge deleted, with the survivor it was merged into (whole rows as
 * jsonb), per run. A child that still names a merged-away row — written by the application while
 * the merge ran, or pointing through a reference the database does not enforce — is an orphan
 * whose parent lives on as the survivor: it is re-pointed there, not deleted, in that run or later.
 */
// A function, not a constant: backup.ts and this module import each other.
const merges = () => sql.id(BACKUP_SCHEMA, 'merges');

export async function ensureMergeMap(db: Db | Tx): Promise<void> {
  await sql`
    create table if not exists ${merges()} (
      seq bigint generated always as identity primary key,
      run_id text not null,
      table_schema text not null,
      table_name text not null,
      loser jsonb not null,
      survivor jsonb not null
    )`.execute(db);
}

/** Before the losers listed in `map` (l0… → s0…) are deleted: remember whom each was merged into. */
export async function recordMerges(ctx: BatchContext, table: Table, map: WorkTable): Promise<void> {
  if (!ctx.backup) return;
  await run(
    ctx,
    sql`
    insert into ${merges()} (run_id, table_schema, table_name, loser, survivor)
    select ${ctx.runId}, ${table.schema}, ${table.name}, to_jsonb(lx), to_jsonb(sx)
      from ${map} m
      join ${tableRef(table)} lx on ${pkMatches(table, 'lx', 'm', 'l')}
      join ${tableRef(table)} sx on ${pkMatches(table, 'sx', 'm', 's')}`,
    'backup',
  );
}

/**
 * The orphans of `rows` (listed by primary key l0…) whose key is a merged-away row of the parent
 * whose survivor is still alive: a temp table of their primary key and the survivor's values of
 * the referenced columns (v0…). The latest merge of a key wins; merges of a run since undone do not count.
 */
export async function redirectable(ctx: BatchContext, rule: OrphanRule, rows: WorkTable): Promise<WorkTable | null> {
  const exists = await run<{ ok: boolean }>(
    ctx,
    sql`select to_regclass(${`${BACKUP_SCHEMA}.merges`}) is not null as ok`,
    'read',
  );
  if (!exists.rows[0]?.ok) return null;
  const child = rule.table;
  const parent = rule.parent;
  const types = rule.parentColumns.map((pc) => parent.columns.find((c) => c.name === pc)!.type);
  const loserHolds = and(rule.columns.map((c, i) => sql`m.loser ->> ${rule.parentColumns[i]!} = ${col('t', c)}::text`));
  const survivorValue = (i: number): Sql => sql`(m.survivor ->> ${rule.parentColumns[i]!})::${sql.raw(types[i]!)}`;
  const alive = parent.softDelete ? sql`and ${isAlive(parent.softDelete, 'p')}` : sql``;
  const target = ctx.nextTemp();
  await run(
    ctx,
    sql`
    create temp table ${target} on commit drop as
    select ${sql.join(child.primaryKey!.map((_, i) => sql.id(`l${i}`)))},
           ${sql.join(rule.parentColumns.map((_, i) => sql`s.${sql.id(`v${i}`)}`))}
      from ${rows} r
      join ${tableRef(child)} t on ${pkMatches(child, 't', 'r', 'l')}
      cross join lateral (
        select ${sql.join(rule.parentColumns.map((_, i) => sql`${survivorValue(i)} as ${sql.id(`v${i}`)}`))}
          from ${merges()} m
         where m.table_schema = ${parent.schema} and m.table_name = ${parent.name} and ${loserHolds}
           and not exists (
             select 1
               from ${sql.id(BACKUP_SCHEMA, 'runs')} u
              where u.undo_of = m.run_id and u.command = 'undo' and u.status in ('completed', 'partial')
           )
         order by m.seq desc
         limit 1
      ) s
     where exists (
       select 1
         from ${tableRef(parent)} p
        where ${and(rule.parentColumns.map((pc, i) => sql`${col('p', pc)} = s.${sql.id(`v${i}`)}`))} ${alive}
     )`,
    'plan',
  );
  return target;
}
