import { sql } from 'kysely';
import type { Table } from '../catalog/types.js';
import type { Db, Tx } from '../db.js';
import type { OrphanRule } from '../rules/types.js';
import { and, col, isAlive, tableRef, type Sql } from '../sql/build.js';
import { currentShadows } from '../sql/shadow.js';
import type { WorkTable } from '../sql/work-table.js';
import { BACKUP_SCHEMA } from './backup.js';
import { pkMatches, run, type BatchContext } from './context.js';

/**
 * The merge map: every loser a merge deleted, with the survivor it was merged into (whole rows as
 * jsonb), per run. A child that still names a merged-away row — written by the application while
 * the merge ran, or pointing through a reference the database does not enforce — is an orphan
 * whose parent lives on as the survivor: it is re-pointed there, not deleted, in that run or later.
 * A dry run keeps its own map in pg_temp (a copy of the merges that count, which its merges add
 * to), so a later rule of the same dry run re-points what the apply's would.
 */
// Functions, not constants: backup.ts and this module import each other.
const realMerges = () => sql.id(BACKUP_SCHEMA, 'merges');
export const SHADOW_MERGES = 'rd_shadow_merges';
const merges = () => (currentShadows() ? sql.id('pg_temp', SHADOW_MERGES) : realMerges());

const mergeMapColumns = sql`
      seq bigint generated always as identity primary key,
      run_id text not null,
      table_schema text not null,
      table_name text not null,
      loser jsonb not null,
      survivor jsonb not null`;

export async function ensureMergeMap(db: Db | Tx): Promise<void> {
  await sql`create table if not exists ${realMerges()} (${mergeMapColumns})`.execute(db);
}

/** A merge of a run since undone re-points nothing. */
const notUndone = (m: string) => sql`
  not exists (
    select 1
      from ${sql.id(BACKUP_SCHEMA, 'runs')} u
     where u.undo_of = ${sql.id(m, 'run_id')} and u.command = 'undo' and u.status in ('completed', 'partial')
  )`;

/**
 * A dry run's merge map, in pg_temp: the merges of earlier runs that count (none of a run since
 * undone), in their order; the dry run's merges are added to it. Returns its name as compiled, and
 * the real map's, for --sql.
 */
export async function createShadowMergeMap(tx: Tx): Promise<[string, string]> {
  const shadow = sql.id('pg_temp', SHADOW_MERGES);
  await sql`drop table if exists ${shadow}`.execute(tx);
  await sql`create temp table ${shadow} (${mergeMapColumns})`.execute(tx);
  const { rows } = await sql<{ ok: boolean }>`
    select to_regclass(${`${BACKUP_SCHEMA}.merges`}) is not null
       and to_regclass(${`${BACKUP_SCHEMA}.runs`}) is not null as ok`.execute(tx);
  if (rows[0]?.ok)
    await sql`
      insert into ${shadow} (run_id, table_schema, table_name, loser, survivor)
      select run_id, table_schema, table_name, loser, survivor
        from ${realMerges()} m
       where ${notUndone('m')}
       order by seq`.execute(tx);
  return [shadow.compile(tx).sql, realMerges().compile(tx).sql];
}

/** Before the losers listed in `map` (l0… → s0…) are deleted: remember whom each was merged into. */
export async function recordMerges(ctx: BatchContext, table: Table, map: WorkTable): Promise<void> {
  if (!ctx.backup) return;
  await run(
    ctx,
    sql`
    insert into ${merges()} (run_id, table_schema, table_name, loser, survivor)
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
      from ${merges()} m
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
