import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import type { DuplicateRule, KeyPart } from '../rules/types.js';
import { and, groupKeyExpr, keyExpr, qualified, rowId, tableRef, type Sql } from '../sql/build.js';
import type { QualifiedName } from '../catalog/types.js';
import { bucketOf, detectStatement, findingOf, rowScope, type DetectRow } from './duplicate-rows.js';
import type { DetectOptions, Finding } from './types.js';

/**
 * Several duplicate-rows rules on one table in one pass over it, where their keys nest.
 *
 * `rules` is a chain (checks/duplicate-nesting.ts proved it): one table, the same rows in scope,
 * NULLs distinct, ordered coarse → fine so that every part of an earlier rule's key is a function
 * of each later rule's key under an equality that is identity. One sort serves every rule: GROUP
 * BY GROUPING SETS over prefixes of the chain's key expressions (coarse rule's first), a rollup.
 * Rule i's level groups by the expressions of rules 1..i, which is grouping by rule i's own key
 * exactly: the earlier expressions add nothing a row's key does not already decide. Of that level
 * the groups with a NULL in rule i's key are not its groups (a NULL there is no duplicate); the
 * rest are exactly its `g`, with its own bucket's ids and its diagnosis' aggregates, and the rule's
 * own detect statement (duplicate-rows.ts) reads them from there: the same counts, samples and
 * diagnosis as its own pass.
 *
 * `collations`: the collation of each text expression part (scanUnits), which the rollup sorts
 * bytewise. Returns each rule's finding, in the chain's order.
 */
export async function detectChain(
  db: Db | Tx,
  rules: DuplicateRule[],
  options: DetectOptions[],
  collations: Map<string, QualifiedName>,
): Promise<(Finding | null)[]> {
  const table = rules[0]!.table;
  const { parts, at } = chainParts(rules);
  const e = (j: number) => sql.id(`__rd_e${j}`);
  const all = sql.join(parts.map((_, j) => e(j)));
  // Rule i's level groups by the first width[i] expressions; grouping() then reads the others as rolled up.
  const width = at.map((_, i) => 1 + Math.max(...at.slice(0, i + 1).flat()));
  const levelOf = (i: number) => (1 << (parts.length - width[i]!)) - 1;
  const sets = [...new Set(width)].map((w) => sql`(${sql.join(parts.slice(0, w).map((_, j) => e(j)))})`);
  // Each rule's sample bucket, hashed from the expressions as sorted: an expression is evaluated
  // once per row (a hash costs little next to lower() and the like).
  const buckets = rules.map((r, i) => bucketOf(r, at[i]!.map(e)));
  // The diagnosis' aggregates are over the row id alone: one of each name serves every rule.
  const extras = new Map(options.flatMap((o) => o.diagnosis?.aggregates ?? []).map((a) => [a.name, a.value] as const));
  const extra = (name: string) => sql.id(`__rd_x_${name}`);
  const idColumn = buckets.some(Boolean) || extras.size ? sql`, ${rowId(table, null)} as id` : sql``;
  const aggregates = [
    ...buckets.map((b, i) => (b ? sql`, array_agg(id) filter (where ${b}) as ${sql.id(`__rd_ids${i}`)}` : sql``)),
    ...[...extras].map(([name, value]) => sql`, ${value} as ${extra(name)}`),
  ];
  // A row some rule of the chain holds: in the shared scope, with no NULL in that rule's key.
  // Rules keyed on columns alone come first: OR stops at the first that holds, so an expression is
  // evaluated here only for rows those leave out.
  const exprCount = (r: DuplicateRule) => r.key.filter((k) => k.kind === 'expr').length;
  const anyKey = sql.join(
    [...rules]
      .sort((a, b) => exprCount(a) - exprCount(b))
      .map((r) => sql`(${and(r.key.map((k) => sql`${keyExpr(k, null)} is not null`))})`),
    sql` or `,
  );
  // A text expression is sorted bytewise, as text columns are (groupKeyExpr): in a deterministic
  // collation the same groups, without the locale's comparison rules. Rule i's g gives it back in
  // its own collation, so that its samples come in the order of the rule's own pass.
  const sorted = (p: KeyPart) => (p.kind === 'expr' ? collations.get(partId(p)) : undefined);
  const selectExprs = sql.join(
    parts.map((p, j) => sql`${groupKeyExpr(table, p, null)}${sorted(p) ? sql` collate "C"` : sql``} as ${e(j)}`),
  );
  // Rule i's groups: its level of the rollup, its key parts named as its own aggregate names them.
  const groupsOf = (rule: DuplicateRule, i: number): Sql => {
    const keys = sql.join(
      at[i]!.map((j, k) => {
        const collation = sorted(parts[j]!);
        return sql`${e(j)}${collation ? sql` collate ${qualified(collation)}` : sql``} as ${sql.id(`__rd_k${k}`)}`;
      }),
    );
    const ids = buckets[i] ? sql.id(`__rd_ids${i}`) : sql`null::text[]`;
    const named = (options[i]!.diagnosis?.aggregates ?? []).map((a) => sql`, ${extra(a.name)} as ${sql.id(a.name)}`);
    const keyNotNull = sql.join(
      at[i]!.map((j) => sql` and ${e(j)} is not null`),
      sql``,
    );
    return sql`
      select ${keys}, n, ${ids} as ids${sql.join(named, sql``)}
        from rolled
       where __rd_level = ${sql.lit(levelOf(i))}${keyNotNull}`;
  };
  const perRule = rules.map(
    (rule, i) => sql`select ${sql.lit(i)} as rule, x.*
      from (${detectStatement(rule, options[i]!, groupsOf(rule, i))}) x`,
  );
  // Every rule's groups in one sort of the rows in scope (rolled); then each rule's own statement
  // over its level of them.
  const { rows } = await sql<DetectRow & { rule: number }>`
    with rolled as materialized (
      select ${all}, grouping(${all}) as __rd_level, count(*) as n${sql.join(aggregates, sql``)}
        from (select ${selectExprs}${idColumn}
                from ${tableRef(table)}
               where ${and([...rowScope(rules[0]!, null), sql`(${anyKey})`])}) k
       group by grouping sets (${sql.join(sets)})
      having count(*) > 1
    )
    ${sql.join(perRule, sql`\n    union all\n    `)}`.execute(db);
  const found: (Finding | null)[] = rules.map(() => null);
  for (const row of rows) found[row.rule] = findingOf(rules[row.rule]!, options[row.rule]!, row);
  return found;
}

/**
 * The chain's key expressions, each once, in the order the rules bring them (coarse first), and for
 * each rule where its key parts are among them.
 */
function chainParts(rules: DuplicateRule[]): { parts: KeyPart[]; at: number[][] } {
  const parts: KeyPart[] = [];
  const ids: string[] = [];
  const at = rules.map((rule) =>
    rule.key.map((part) => {
      const id = partId(part);
      if (!ids.includes(id)) {
        ids.push(id);
        parts.push(part);
      }
      return ids.indexOf(id);
    }),
  );
  return { parts, at };
}

/** The same key part, for parts without a collation or equality of their own (as chains have). */
export function partId(part: KeyPart): string {
  return part.kind === 'column' ? `column ${part.column}` : `expr ${part.expr.text}`;
}
