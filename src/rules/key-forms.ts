import { sql } from 'kysely';
import type { Tx } from '../db.js';
import { isPgError } from '../errors.js';
import { fragment, tableName } from '../sql/build.js';
import { formId, type ExpressionForms, type Rule } from './types.js';

/**
 * Each key expression of these rules as the server normalises it: the planner's deparse of the
 * expression over the table's row type, from `EXPLAIN (VERBOSE)` of a query over a NULL array
 * of that type — nothing is read or written (verify/normalize.ts compares index keys the same
 * way). `coalesce(nick, '')` and `COALESCE(nick, ''::text)` both come out as one text. An
 * expression the server rejects gets no form here; the rule's validation reports it.
 */
export async function expressionForms(tx: Tx, rules: Rule[]): Promise<ExpressionForms> {
  const forms: ExpressionForms = new Map();
  for (const rule of rules) {
    if (rule.check === 'orphaned-rows') continue;
    for (const part of rule.key) {
      if (part.kind !== 'expr' || forms.has(formId(rule.table, part.expr.text))) continue;
      await sql`savepoint rd_key_form`.execute(tx);
      try {
        const { rows } = await sql<{ 'QUERY PLAN': [{ Plan: { Output: string[] } }] }>`
          explain (verbose, costs off, format json)
          select ${fragment(part.expr)}
            from pg_catalog.unnest(null::${tableName(rule.table)}[]) as t`.execute(tx);
        const output = rows[0]?.['QUERY PLAN'][0].Plan.Output[0];
        if (output) forms.set(formId(rule.table, part.expr.text), output);
        await sql`release savepoint rd_key_form`.execute(tx);
      } catch (e) {
        if (!isPgError(e)) throw e;
        await sql`rollback to savepoint rd_key_form`.execute(tx);
      }
    }
  }
  return forms;
}
