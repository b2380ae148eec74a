import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { keyLabel, type DuplicateRule } from '../rules/types.js';
import { and, groupKeyExpr, rowId, tableRef, type Sql } from '../sql/build.js';
import { duplicateRows, duplicateScope } from './duplicate-rows.js';
import { baseFinding, count, type Finding, type Sample } from './types.js';

/**
 * Several duplicate-rows rules on one table in a single pass: GROUPING SETS, one set per rule.
 * Each rule's scope is a boolean grouped with its key, so rows outside the scope form groups of
 * their own that HAVING drops; counts are exactly those of the single-rule query. Sample ids come
 * from a per-rule 1-in-256 hash bucket of keys; a rule whose bucket is too small for --sample is
 * asked again on its own (that happens only when it has few duplicate groups).
 */
export async function detectShared(db: Db | Tx, rules: DuplicateRule[], options: { sample: number }): Promise<(Finding | null)[]> {
  const table = rules[0]!.table;
  const k = (r: number, j: number) => sql.id(`r${r}_k${j}`);
  const inScope = (r: number) => sql.id(`r${r}_in`);
  const bucket = (r: number) => sql.id(`r${r}_b`);
  const columns: Sql[] = [];
  rules.forEach((rule, r) => {
    rule.key.forEach((part, j) => columns.push(sql`${groupKeyExpr(table, part, null)} as ${k(r, j)}`));
    columns.push(sql`coalesce(${and(duplicateScope(rule, null))}, false) as ${inScope(r)}`);
    columns.push(sql`hashtext(concat_ws('|', ${sql.join(rule.key.map((part) => sql`(${groupKeyExpr(table, part, null)})::text`))})) & 255 = 0 as ${bucket(r)}`);
  });
  const keysOf = (r: number) => rules[r]!.key.map((_, j) => k(r, j));
  const sets = sql.join(rules.map((_, r) => sql`(${sql.join([inScope(r), ...keysOf(r)])})`));
  const which = sql`case ${sql.join(rules.map((_, r) => sql`when grouping(${inScope(r)}) = 0 then ${r}`), sql` `)} end`;
  const scoped = sql`case ${sql.join(rules.map((_, r) => sql`when grouping(${inScope(r)}) = 0 then ${inScope(r)}`), sql` `)} end`;
  const result = await sql<{ rule: number; groups: string; rows: string; samples: Sample[] | null; bucketed: string }>`
    with g as (
      select ${which} as rule, ${sql.join(rules.flatMap((_, r) => keysOf(r)))}, count(*) as n,
             ${sql.join(rules.map((_, r) => sql`array_agg(id) filter (where ${bucket(r)}) as ${sql.id(`ids${r}`)}`))}
        from (select ${sql.join(columns)}, ${rowId(table, null)} as id from ${tableRef(table)}) base
       group by grouping sets (${sets})
      having count(*) > 1 and ${scoped}
    )
    ${sql.join(rules.map((_, r) => sql`
    select ${r} as rule, (select count(*) from g where rule = ${r}) as groups,
           (select coalesce(sum(n - 1), 0) from g where rule = ${r}) as rows,
           (select count(*) from g where rule = ${r} and ${sql.id(`ids${r}`)} is not null) as bucketed,
           (select json_agg(json_build_object('key', json_build_array(${sql.join(keysOf(r))}),
                   'ids', (select json_agg(x order by ${table.primaryKey?.length === 1 ? sql`x` : sql`x::text`}) from unnest(${sql.id(`ids${r}`)}) x))
                   order by ${sql.join(keysOf(r))})
              from (select * from g where rule = ${r} and ${sql.id(`ids${r}`)} is not null order by ${sql.join(keysOf(r))} limit ${options.sample}) s) as samples`), sql` union all `)}
  `.execute(db);
  const out: (Finding | null)[] = [];
  for (const [r, rule] of rules.entries()) {
    const row = result.rows.find((x) => Number(x.rule) === r)!;
    const groups = count(row.groups);
    if (groups === 0) { out.push(null); continue; }
    if (count(row.bucketed) < Math.min(options.sample, groups)) { out.push(await duplicateRows.detect(db, rule, options)); continue; }
    out.push({ ...baseFinding(rule, rule.key.map(keyLabel)), groups, rows: count(row.rows), samples: row.samples ?? [] });
  }
  return out;
}
