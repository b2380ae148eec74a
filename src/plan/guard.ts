import { sql } from 'kysely';
import type { Catalog } from '../catalog/types.js';
import type { Tx } from '../db.js';
import type { Rule } from '../rules/types.js';
import { describeRule } from '../rules/types.js';
import { workTable, type WorkTable } from '../sql/work-table.js';
import { run, type BatchContext } from '../repair/context.js';
import { GROUPS, MEMBERS, recordSkipped } from '../repair/groups.js';
import { referencesInto } from '../repair/references.js';
import type { Plan } from './file.js';
import { CHANGED_SINCE_THE_PLAN, type PlanHooks, type SkippedGroup } from '../repair/context.js';
import { idKey, listedIdKey, plannedIdKey } from './ids.js';
import { childrenOf, rowByPk } from './lookups.js';
import { groupKeyColumns, referenceName } from './record.js';
import { underCanonicalRowText } from './row-text.js';

/** The plan's member rows of the current rule, by plan group: (pg, loser, id, fp). */
const PLAN_ROWS = workTable('rd_plan_rows');
/** The plan's children of the current rule's losers, by plan group: (pg, ref, id). */
const PLAN_KIDS = workTable('rd_plan_kids');
/** Each listed group (n, after the plan restricted and renumbered them) and its plan group pg. */
const PLAN_GROUPS = workTable('rd_plan_groups');
/** PLAN_ROWS by listed group, what each batch reads: (n, loser, id, fp). */
const PLANNED_MEMBERS = workTable('rd_plan_members');
/** PLAN_KIDS by listed group: (n, ref, id). */
const PLANNED_CHILDREN = workTable('rd_plan_children');

/**
 * `repair --apply --plan`: restricts each rule's listed groups to the plan's, and under each
 * batch's row locks leaves out the groups whose rows are no longer what the plan saw.
 */
export class PlanGuard implements PlanHooks {
  constructor(
    private readonly plan: Plan,
    private readonly catalog: Catalog,
    private readonly declared: Rule[],
    private readonly infer: boolean,
    /** The plan file's md5: the run records it. */
    readonly md5: string,
  ) {}

  private groupsOf(rule: Rule) {
    const index = this.plan.rules.findIndex((r) => r.rule === describeRule(rule));
    return this.plan.groups.filter((g) => g.rule === index);
  }

  private refsOf(rule: Rule) {
    return referencesInto(this.catalog, rule.table, this.declared, this.infer);
  }

  /**
   * Right after the rule's groups were listed (rd_groups, rd_members): keep only the groups that
   * hold a row of a planned group, numbered 1… again in key order, and load the plan's rows and
   * children for the batches' checks. Returns how many groups are left, and how many were dropped
   * (found since the plan: left alone).
   */
  async restrict(tx: Tx, rule: Rule): Promise<{ total: number; unplanned: number; vanished: SkippedGroup[] }> {
    const table = rule.table;
    const groups = this.groupsOf(rule);
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    const members = groups.flatMap((g, pg) =>
      g.rows.map((r) => [pg, g.losers.some((l) => same(l, r.id)), r.id, r.fingerprint]),
    );
    const workTables = [PLAN_ROWS, PLAN_KIDS, PLAN_GROUPS, PLANNED_MEMBERS, PLANNED_CHILDREN];
    await sql`drop table if exists ${sql.join(workTables)}`.execute(tx);
    // The plan's rows, their ids cast to the key's types (plannedIdKey): one parameter, one statement.
    await sql`create temp table ${PLAN_ROWS} as
      select (e ->> 0)::int as pg, (e ->> 1)::boolean as loser,
             ${plannedIdKey(table, sql`(e -> 2)`)} as id, e ->> 3 as fp
        from jsonb_array_elements(${JSON.stringify(members)}::jsonb) e`.execute(tx);
    await sql`create index on ${PLAN_ROWS} (pg)`.execute(tx);
    await sql`analyze ${PLAN_ROWS}`.execute(tx);
    await sql`create temp table ${PLAN_KIDS} (pg int, ref int, id jsonb)`.execute(tx);
    for (const [i, ref] of this.refsOf(rule).entries()) {
      const name = referenceName(table, ref);
      const kids = groups.flatMap((g, pg) =>
        g.children.filter((c) => c.reference === name).flatMap((c) => c.ids.map((id) => [pg, id])),
      );
      if (!kids.length) continue;
      await sql`insert into ${PLAN_KIDS}
        select (e ->> 0)::int, ${i}, ${plannedIdKey(ref.child, sql`(e -> 1)`)}
          from jsonb_array_elements(${JSON.stringify(kids)}::jsonb) e`.execute(tx);
    }
    await sql`create index on ${PLAN_KIDS} (pg, ref)`.execute(tx);
    await sql`analyze ${PLAN_KIDS}`.execute(tx);
    // A listed group is the plan's when it holds a planned row; numbered again in key order.
    await sql`create temp table ${PLAN_GROUPS} as
      select row_number() over (order by m.n) as n, m.n as listed, m.pg
        from (select m.n, min(p.pg) as pg
                from ${MEMBERS} m
                join ${PLAN_ROWS} p on p.id = ${listedIdKey(table, 'm', 'p')}
               group by m.n) m`.execute(tx);
    await sql`create index on ${PLAN_GROUPS} (listed)`.execute(tx);
    await sql`create index on ${PLAN_GROUPS} (n)`.execute(tx);
    await sql`analyze ${PLAN_GROUPS}`.execute(tx);
    const { rows } = await sql<{ listed: string; kept: string }>`
      select (select count(*) from ${GROUPS}) as listed, (select count(*) from ${PLAN_GROUPS}) as kept`.execute(tx);
    await keepPlannedOnly(tx, GROUPS, ['n', ...groupKeyColumns(rule)]);
    await keepPlannedOnly(tx, MEMBERS, ['n', ...(table.primaryKey ?? []).map((_, i) => `p${i}`)]);
    // The plan's rows and children by listed group: a batch reads its own groups' by index.
    await sql`create temp table ${PLANNED_MEMBERS} as
      select g.n, p.loser, p.id, p.fp
        from ${PLAN_GROUPS} g
        join ${PLAN_ROWS} p on p.pg = g.pg`.execute(tx);
    await sql`create index on ${PLANNED_MEMBERS} (n)`.execute(tx);
    await sql`create temp table ${PLANNED_CHILDREN} as
      select g.n, k.ref, k.id
        from ${PLAN_GROUPS} g
        join ${PLAN_KIDS} k on k.pg = g.pg`.execute(tx);
    await sql`create index on ${PLANNED_CHILDREN} (n, ref, id)`.execute(tx);
    for (const t of [PLANNED_MEMBERS, PLANNED_CHILDREN]) await sql`analyze ${t}`.execute(tx);
    await sql`drop table ${PLAN_ROWS}, ${PLAN_KIDS}`.execute(tx);
    // A planned group no listed group holds a row of: its rows left the key (gone, or re-keyed so
    // they are no longer duplicates). Changed since the plan, as the contract says.
    const { rows: gone } = await sql<{ pg: number }>`
      select pg from generate_series(0, ${groups.length - 1}) pg
      except
      select pg from ${PLAN_GROUPS}
       order by pg`.execute(tx);
    const vanished = gone.map(({ pg }) => {
      const g = groups[Number(pg)]!;
      return { key: g.key, ids: g.rows.map((r) => r.id), reason: CHANGED_SINCE_THE_PLAN };
    });
    const kept = Number(rows[0]?.kept ?? 0);
    return { total: kept, unplanned: Number(rows[0]?.listed ?? 0) - kept, vanished };
  }

  /**
   * Under the batch's row locks (`rows`: n, p0… of every member it holds): the groups whose rows
   * are no longer what the plan saw — a row changed (its fingerprint), is gone or joined, or a
   * loser has a child the plan does not list — leave `rows` and are skipped with their reason.
   * Returns how many.
   */
  async checkLocked(ctx: BatchContext, rule: Rule, rows: WorkTable): Promise<number> {
    const table = rule.table;
    // The batch's span of group numbers, on every read of the plan's tables: whatever join the
    // planner picks, it reads this batch's part of their index, not all the groups before it (a
    // merge join from the first group made the walk quadratic: 100k groups, 1.9x --apply).
    const inBatch = (alias: string) =>
      sql`${sql.ref(`${alias}.n`)} between (select min(n) from ${rows}) and (select max(n) from ${rows})`;
    const current = sql`
      select r.n, ${listedIdKey(table, 'r', 'p')} as id, md5(t::text) as fp
        from ${rows} r
        ${rowByPk(table, 't', 'r', 'p')}`;
    const planned = sql`
      select p.n, p.id, p.fp
        from ${PLANNED_MEMBERS} p
       where ${inBatch('p')}
         and p.n in (select n from ${rows})`;
    // A row whose text or membership differs: on one side of the full join only.
    const parts = [
      sql`
      select coalesce(c.n, w.n) as n
        from (${current}) c
        full join (${planned}) w on w.n = c.n and w.id = c.id and w.fp = c.fp
       where c.n is null or w.n is null`,
    ];
    // A child of a planned loser that the plan does not list: it appeared since.
    for (const [i, ref] of this.refsOf(rule).entries()) {
      parts.push(sql`
      select r.n
        from ${rows} r
        join ${PLANNED_MEMBERS} p on p.n = r.n and p.loser and p.id = ${listedIdKey(table, 'r', 'p')}
        ${rowByPk(table, 'lx', 'r', 'p')}
        ${childrenOf(ref, 'lx')}
       where ${inBatch('p')}
         and not exists (select 1
                           from ${PLANNED_CHILDREN} k
                          where k.n = r.n and k.ref = ${i} and k.id = ${idKey(ref.child, 'x')}
                            and ${inBatch('k')})`);
    }
    const anyChange = sql.join(parts, sql` union all `);
    // Into Node, not a temp table: almost always none, and a batch then pays one statement, not four.
    const { rows: found } = await underCanonicalRowText(ctx.tx, () =>
      run<{ n: string }>(ctx, sql`select distinct n from (${anyChange}) q`, 'plan'),
    );
    if (!found.length) return 0;
    const ns = sql.val(found.map((r) => r.n));
    const skipped = await recordSkipped(ctx, sql`select unnest(${ns}::bigint[]) as n`, CHANGED_SINCE_THE_PLAN);
    await run(ctx, sql`delete from ${rows} where n = any(${ns}::bigint[])`, 'plan');
    return skipped;
  }
}

/**
 * Rewrite a listing work table (rd_groups or rd_members: `columns`, n first) to the plan's groups,
 * renumbered: a fresh copy, truncated and refilled. Deleting and updating n in place would leave
 * every row twice (the dead version too) and its index on n twice as large, read by every batch.
 */
async function keepPlannedOnly(tx: Tx, table: WorkTable, columns: string[]): Promise<void> {
  const kept = workTable('rd_plan_kept');
  const rest = columns.slice(1).map((c) => sql.ref(`w.${c}`));
  await sql`drop table if exists ${kept}`.execute(tx);
  await sql`create temp table ${kept} as
    select ${sql.join([sql`p.n`, ...rest])}
      from ${table} w
      join ${PLAN_GROUPS} p on p.listed = w.n`.execute(tx);
  await sql`truncate ${table}`.execute(tx);
  await sql`insert into ${table} (${sql.join(columns.map((c) => sql.id(c)))}) select * from ${kept}`.execute(tx);
  await sql`drop table ${kept}`.execute(tx);
  await sql`analyze ${table}`.execute(tx);
}
