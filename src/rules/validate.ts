import { sql } from 'kysely';
import type { Tx } from '../db.js';
import { RowdoctorError, describePgError, isPgError } from '../errors.js';
import { and, col, fragment, keyExpr, tableRef, type Sql } from '../sql/build.js';
import { holdsType } from '../sql/typed.js';
import { describeRule, type Rule } from './types.js';

/**
 * Ask the server whether each rule's SQL makes sense — scope is a boolean expression over the
 * table, expressions evaluate, referenced columns compare — with `LIMIT 0` queries that read no
 * rows. Every problem is reported at once, before any real query runs.
 */
export async function validateRules(tx: Tx, rules: Rule[]): Promise<void> {
  const problems: string[] = [];
  for (const [i, rule] of rules.entries()) {
    const probe = probeQuery(rule);
    if (!probe) continue;
    const savepoint = sql.id(`rd_validate_${i}`);
    await sql`savepoint ${savepoint}`.execute(tx);
    try {
      await probe.execute(tx);
      await sql`release savepoint ${savepoint}`.execute(tx);
    } catch (e) {
      await sql`rollback to savepoint ${savepoint}`.execute(tx);
      if (!isPgError(e)) throw e;
      problems.push(`  ${rule.source} rule ${describeRule(rule)}: ${describePgError(e)}`);
    }
  }
  if (problems.length) {
    throw new RowdoctorError(
      `The server rejected ${problems.length} rule${problems.length === 1 ? '' : 's'}:\n${problems.join('\n')}`,
      {
        hint:
          "Scopes (where) must be boolean expressions over the table's own columns; " +
          'key expressions must evaluate on one row.',
      },
    );
  }
}

function probeQuery(rule: Rule) {
  const t = tableRef(rule.table);
  const terms: Sql[] = rule.where ? [fragment(rule.where)] : [];
  if (rule.check === 'orphaned-rows') {
    const text = rule.typed?.asText ? sql`::text` : sql``;
    const on = and(rule.parentColumns.map((pc, i) => sql`${col('p', pc)}${text} = ${col('c', rule.columns[i]!)}`));
    if (rule.typed) terms.push(holdsType(rule.table, rule.typed.typeColumn, rule.typed.type, null));
    return sql`
      select 1
        from (select * from ${t} where ${and(terms)}) c
        join ${tableRef(rule.parent)} p on ${on}
       limit 0`;
  }
  const hasExpr = rule.key.some((k) => k.kind === 'expr');
  if (!hasExpr && !rule.where) return null;
  return sql`select ${sql.join(rule.key.map((k) => keyExpr(k, null)))} from ${t} where ${and(terms)} limit 0`;
}
