import { sql } from 'kysely';
import type { Rule } from '../rules/types.js';
import { describeRule } from '../rules/types.js';
import type { Table } from '../catalog/types.js';
import { col } from '../sql/build.js';
import type { WorkTable } from '../sql/work-table.js';
import { run, type BatchContext } from '../repair/context.js';
import { GROUPS } from '../repair/groups.js';
import { referencesInto, type Reference } from '../repair/references.js';
import type { PlanChildren, PlanGroup, PlanRule } from './file.js';
import type { PlanHooks } from '../repair/context.js';
import { idKey, planId } from './ids.js';
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
 * tables' do.
 */
export class PlanRecorder implements PlanHooks {
  readonly groups: PlanGroup[] = [];
  /**
   * Where each rule's group n sits in `groups`: a batch the server refused as a whole is run again
   * in halves (BatchSplit), which record its groups again — in place of the first record.
   */
  private readonly at = new Map<string, number>();

  constructor(private readonly rules: Rule[]) {}

  /** After a batch ranked its groups into `map` (n, l0… loser, s0… survivor); `rows` holds every member (n, p0…). */
  async planned(ctx: BatchContext, rule: Rule, rows: WorkTable, map: WorkTable): Promise<void> {
    const table = rule.table;
    const pkLen = (table.primaryKey ?? []).length;
    const ids = (p: string) => sql.join(Array.from({ length: pkLen }, (_, i) => col('m', `${p}${i}`)));
    const idOf = (p: string) => (pkLen === 1 ? ids(p) : sql`json_build_array(${ids(p)})`);
    const keys = sql.join(groupKeyColumns(rule).map((k) => col('g', k)));
    const refs = referencesInto(ctx.catalog, table, ctx.declared, ctx.infer);
    await underCanonicalRowText(ctx.tx, async () => {
      // Per group: key, survivor, losers (in key order).
      const { rows: heads } = await run<{ n: string; key: unknown[]; survivor: unknown; losers: unknown[] }>(
        ctx,
        sql`
        select m.n, json_build_array(${keys}) as key,
               (array_agg(${idOf('s')}))[1] as survivor,
               json_agg(${idOf('l')} order by ${ids('l')}) as losers
          from ${map} m
          cross join lateral (select * from ${GROUPS} g where g.n = m.n limit 1) g
         group by m.n, ${keys}
         order by m.n`,
        'read',
      );
      // Every member row of those groups, with the md5 of its text.
      const { rows: members } = await run<{ n: string; rows: { id: unknown; fingerprint: string }[] }>(
        ctx,
        sql`
        select r.n, json_agg(json_build_object('id', ${planId(table, 't')}, 'fingerprint', md5(t::text))
                             order by ${sql.join((table.primaryKey ?? []).map((c) => col('t', c)))}) as rows
          from ${rows} r
          ${rowByPk(table, 't', 'r', 'p')}
         where r.n in (select n from ${map})
         group by r.n`,
        'read',
      );
      const byN = new Map<string, PlanGroup>();
      const ruleIndex = this.rules.indexOf(rule);
      for (const h of heads) {
        const group: PlanGroup = {
          rule: ruleIndex,
          key: h.key,
          survivor: h.survivor,
          losers: h.losers,
          rows: [],
          children: [],
          ...rowsChanged(rule, h.survivor, h.losers),
        };
        byN.set(String(h.n), group);
        const seen = this.at.get(`${ruleIndex}|${h.n}`);
        if (seen === undefined) this.at.set(`${ruleIndex}|${h.n}`, this.groups.push(group) - 1);
        else this.groups[seen] = group;
      }
      for (const m of members) {
        const g = byN.get(String(m.n));
        if (g) g.rows = m.rows;
      }
      // The children each reference would re-point: rows naming a loser.
      for (const ref of refs) {
        const { rows: kids } = await run<{ n: string; ids: unknown[] }>(
          ctx,
          sql`
          select m.n, json_agg(${planId(ref.child, 'x')} order by ${idKey(ref.child, 'x')}) as ids
            from ${map} m
            ${rowByPk(table, 'lx', 'm', 'l')}
            ${childrenOf(ref, 'lx')}
           group by m.n`,
          'read',
        );
        const name = referenceName(table, ref);
        for (const k of kids) {
          const entry: PlanChildren = { reference: name, table: ref.child.id, ids: k.ids };
          byN.get(String(k.n))?.children.push(entry);
        }
      }
    });
  }
}

/** rd_groups' key columns k0… of the rule. */
export function groupKeyColumns(rule: Rule): string[] {
  const n = rule.check === 'orphaned-rows' ? rule.columns.length : rule.key.length;
  return Array.from({ length: n }, (_, i) => `k${i}`);
}

/** The rows of the rule's own table the group's repair deletes or updates. */
function rowsChanged(rule: Rule, survivor: unknown, losers: unknown[]): Pick<PlanGroup, 'delete' | 'update'> {
  if (rule.repair === 'soft-delete') return { delete: [], update: losers };
  const fills = rule.check === 'duplicate-rows' && rule.fill;
  return { delete: losers, update: fills ? [survivor] : [] };
}
