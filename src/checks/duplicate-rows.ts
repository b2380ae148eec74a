import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import type { DuplicateRule } from '../rules/types.js';
import { keyLabel } from '../rules/types.js';
import { and, fragment, isAlive, keyAliases, keyExpr, keysEqual, rowId, rowIdOrder, tableRef, type Sql } from '../sql/build.js';
import { baseFinding, count, type Check, type Finding, type Sample } from './types.js';

/**
 * duplicate-rows: rows that share a key that should be unique.
 *
 * A row takes part when it is inside the rule's `where` scope, is not soft-deleted (unless
 * includeSoftDeleted), and has no NULL key part (unless nullsNotDistinct) — exactly the rows a
 * unique index with that predicate and NULL semantics would hold. `groups` counts key values held
 * by more than one such row; `rows` = Σ(count − 1), the rows a repair removes.
 */
export const duplicateRows: Check<DuplicateRule> = {
  id: 'duplicate-rows',
  describe: (rule) => `${rule.table.id}(${rule.key.map(keyLabel).join(', ')})`,
  detect,
};

/** The rows a rule looks at, as WHERE terms over the table (unqualified or under `alias`). */
export function duplicateScope(rule: DuplicateRule, alias: string | null): Sql[] {
  const terms: Sql[] = [];
  if (rule.where) terms.push(fragment(rule.where));
  if (rule.table.softDelete && !rule.includeSoftDeleted) terms.push(isAlive(rule.table.softDelete, alias));
  if (!rule.nullsNotDistinct) terms.push(...rule.key.map((k) => sql`${keyExpr(k, alias)} is not null`));
  return terms;
}

async function detect(db: Db | Tx, rule: DuplicateRule, options: { sample: number }): Promise<Finding | null> {
  const t = tableRef(rule.table);
  const names = keyAliases(rule.key.length);
  const keyCols = sql.join(names.map((n) => sql.id(n)));
  const selectKeys = sql.join(rule.key.map((k, i) => sql`${keyExpr(k, null)} as ${sql.id(names[i]!)}`));
  const joinOn = keysEqual(rule.key.map((k) => keyExpr(k, 'r')), names.map((n) => sql.id('s', n)), rule.nullsNotDistinct);
  const result = await sql<{ groups: string; rows: string; samples: Sample[] }>`
    with g as (
      select ${keyCols}, count(*) as n
        from (select ${selectKeys} from ${t} where ${and(duplicateScope(rule, null))}) k
       group by ${keyCols}
      having count(*) > 1
    ),
    s as (select ${keyCols} from g order by ${keyCols} limit ${options.sample}),
    si as (
      select ${sql.join(names.map((n) => sql.id('s', n)))}, json_agg(${rowId(rule.table, 'r')} order by ${rowIdOrder(rule.table, 'r')}) as ids
        from s join ${t} r on ${joinOn} and ${and(duplicateScope(rule, 'r'))}
       group by ${sql.join(names.map((n) => sql.id('s', n)))}
    )
    select (select count(*) from g) as groups,
           (select coalesce(sum(n - 1), 0) from g) as rows,
           (select coalesce(json_agg(json_build_object('key', json_build_array(${keyCols}), 'ids', ids) order by ${keyCols}), '[]'::json) from si) as samples
  `.execute(db);
  const row = result.rows[0]!;
  if (count(row.groups) === 0) return null;
  return { ...baseFinding(rule, rule.key.map(keyLabel)), groups: count(row.groups), rows: count(row.rows), samples: row.samples };
}
