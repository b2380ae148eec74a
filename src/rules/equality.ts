import { sql } from 'kysely';
import { loadEqualities } from '../catalog/equality.js';
import type { Tx } from '../db.js';
import { keyExpr, tableRef } from '../sql/build.js';
import type { KeyPart, Rule } from './types.js';

/**
 * Give each declared expression key part the equality of the type it evaluates to (a column's
 * comes with the catalog): `name::extensions.citext` compares as citext does, whatever the
 * search_path, and samples hash it as that equality does. The type is read without evaluating
 * the expression: it is selected from no rows, and the outer join gives one typed NULL.
 */
export async function resolveKeyEqualities(tx: Tx, rules: Rule[]): Promise<Rule[]> {
  const typed = new Map<Rule, number[]>();
  for (const rule of rules) {
    if (rule.check === 'orphaned-rows') continue;
    const exprs = rule.key.filter((k) => k.kind === 'expr' && k.equality === undefined);
    if (!exprs.length) continue;
    const cols = sql.join(exprs.map((k, i) => sql`${keyExpr(k, null)} as ${sql.id(`x${i}`)}`));
    const types = sql.join(exprs.map((_, i) => sql`pg_catalog.pg_typeof(k.${sql.id(`x${i}`)})::oid::int`));
    const { rows } = await sql<{ types: number[] }>`
      select array[${types}] as types
        from (select 1) v
        left join (select ${cols} from ${tableRef(rule.table)} where false) k on true`.execute(tx);
    typed.set(rule, rows[0]?.types ?? []);
  }
  if (!typed.size) return rules;
  const equalities = await loadEqualities(tx, [...typed.values()].flat());
  return rules.map((rule) => {
    const types = typed.get(rule);
    if (!types || rule.check === 'orphaned-rows') return rule;
    let n = 0;
    const key = rule.key.map((k): KeyPart => {
      if (k.kind !== 'expr' || k.equality !== undefined) return k;
      return { ...k, equality: equalities.get(types[n++]!) ?? null };
    });
    return { ...rule, key };
  });
}
