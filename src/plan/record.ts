import { sql } from 'kysely';
import type { Rule } from '../rules/types.js';
import { describeRule } from '../rules/types.js';
import type { Table } from '../catalog/types.js';
import { col, type Sql } from '../sql/build.js';
import type { WorkTable } from '../sql/work-table.js';
import { run, type BatchContext } from '../repair/context.js';
import { GROUPS } from '../repair/groups.js';
import { referencesInto, type Reference } from '../repair/references.js';
import type { PlanRule } from './file.js';
import type { PlanHooks } from '../repair/context.js';
import { idKey, listedPlanId, planId } from './ids.js';
import { childrenOf, rowByPk } from './lookups.js';
import { underCanonicalRowText } from './row-text.js';

/** `child(columns) -> parent(columns)`: how a plan names a reference. */
export function referenceName(parent: Table, ref: Reference): string {
  return `${ref.child.id}(${ref.columns.join(', ')}) -> ${parent.id}(${ref.parentColumns.join(', ')})`;
}

export function planRule(rule: Rule): PlanRule {
  return { rule: describeRule(rule), check: rule.check, table: rule.table.id, repair: rule.repair };
}

/**
 * Collects a dry run's groups for `repair --plan-out`: per group its key, survivor and losers,
 * every member row's fingerprint, and the children each reference would re-point — read in the
 * batch, before its statements change the copies (sql/shadow.ts), whose rows print as the real
 * tables' do. Each group comes from the server as its JSON text, written to the file as it is:
 * one statement a batch, and 100k groups are never parsed and printed again in Node.
 */
export class PlanRecorder implements PlanHooks {
  /** Each planned group as a JSON text (a PlanGroup), in rule and key order. */
  readonly groups: string[] = [];
  /**
   * Where each rule's group n sits in `groups`: a batch the server refused as a whole is run again
   * in halves (BatchSplit), which record its groups again — in place of the first record.
   */
  private readonly at = new Map<string, number>();

  constructor(private readonly rules: Rule[]) {}

  /** After a batch ranked its groups into `map` (n, l0… loser, s0… survivor); `rows` holds every member (n, p0…). */
  async planned(ctx: BatchContext, rule: Rule, rows: WorkTable, map: WorkTable): Promise<void> {
    const table = rule.table;
    const pk = table.primaryKey ?? [];
    const idOf = (p: string) =>
      listedPlanId(
        table,
        pk.map((_, i) => col('m', `${p}${i}`)),
      );
    const byKey = (p: string) => sql.join(pk.map((_, i) => col('m', `${p}${i}`)));
    const keys = sql.join(groupKeyColumns(rule).map((k) => col('g', k)));
    const refs = referencesInto(ctx.catalog, table, ctx.declared, ctx.infer);
    const ruleIndex = this.rules.indexOf(rule);
    // Per reference, the children a group's losers have (null: none), as { reference, table, ids }.
    const kids = refs.map((ref, i) => {
      const name = sql.id(`c${i}`);
      const entry = sql`json_build_object('reference', ${referenceName(table, ref)}::text,
                                          'table', ${ref.child.id}::text, 'ids', ${name}.ids)`;
      const query = sql`
        select m.n, json_agg(${planId(ref.child, 'x')} order by ${idKey(ref.child, 'x')}) as ids
          from ${map} m
          ${rowByPk(table, 'lx', 'm', 'l')}
          ${childrenOf(ref, 'lx')}
         group by m.n`;
      return { name, entry, query };
    });
    const kidsWith = kids.map((k) => sql`, ${k.name} as (${k.query})`);
    const kidsJoin = kids.map((k) => sql`left join ${k.name} on ${k.name}.n = h.n`);
    const perReference = sql.join(
      kids.map((k, i) => sql`(${i}, case when ${k.name}.n is not null then ${k.entry} end)`),
    );
    const children = kids.length
      ? sql`(select coalesce(json_agg(c order by i) filter (where c is not null), '[]'::json)
               from (values ${perReference}) v(i, c))`
      : sql`'[]'::json`;
    const { deletes, updates } = rowsChanged(rule);
    const { rows: found } = await underCanonicalRowText(ctx.tx, () =>
      run<{ g: string; n: string }>(
        ctx,
        sql`
        with heads as (
          -- Per group: survivor and losers (in key order).
          select m.n, (array_agg(${idOf('s')}))[1] as survivor, json_agg(${idOf('l')} order by ${byKey('l')}) as losers
            from ${map} m
           group by m.n
        ), members as (
          -- Every member row of those groups, with the md5 of its text.
          select r.n, json_agg(json_build_object('id', ${planId(table, 't')}, 'fingerprint', md5(t::text))
                               order by ${sql.join(pk.map((c) => col('t', c)))}) as rows
            from ${rows} r
            ${rowByPk(table, 't', 'r', 'p')}
           where r.n in (select n from ${map})
           group by r.n
        )${sql.join(kidsWith, sql``)}
        select json_build_object(
                 'rule', ${ruleIndex}::int,
                 'key', json_build_array(${keys}),
                 'survivor', h.survivor,
                 'losers', h.losers,
                 'rows', coalesce(mr.rows, '[]'::json),
                 'children', ${children},
                 'delete', ${deletes},
                 'update', ${updates})::text as g,
               h.n
          from heads h
          cross join lateral (select * from ${GROUPS} g where g.n = h.n limit 1) g
          left join members mr on mr.n = h.n
          ${sql.join(kidsJoin, sql` `)}
         order by h.n`,
        'read',
      ),
    );
    for (const r of found) {
      const seen = this.at.get(`${ruleIndex}|${r.n}`);
      if (seen === undefined) this.at.set(`${ruleIndex}|${r.n}`, this.groups.push(r.g) - 1);
      else this.groups[seen] = r.g;
    }
  }
}

/** rd_groups' key columns k0… of the rule. */
export function groupKeyColumns(rule: Rule): string[] {
  const n = rule.check === 'orphaned-rows' ? rule.columns.length : rule.key.length;
  return Array.from({ length: n }, (_, i) => `k${i}`);
}

/** The rows of the rule's own table the group's repair deletes or updates, from heads `h`. */
function rowsChanged(rule: Rule): { deletes: Sql; updates: Sql } {
  const none = sql`'[]'::json`;
  if (rule.repair === 'soft-delete') return { deletes: none, updates: sql`h.losers` };
  const fills = rule.check === 'duplicate-rows' && rule.fill;
  return { deletes: sql`h.losers`, updates: fills ? sql`json_build_array(h.survivor)` : none };
}
