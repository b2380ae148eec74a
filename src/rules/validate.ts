import { sql } from 'kysely';
import type { Tx } from '../db.js';
import { RowdoctorError, describePgError, isPgError, noEquality } from '../errors.js';
import { and, col, equals, fragment, keyExpr, tableRef, type Sql } from '../sql/build.js';
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
    const uncomparable = referenceWithoutEquality(rule);
    if (uncomparable) {
      problems.push(`  ${rule.source} rule ${describeRule(rule)}: ${uncomparable.message}. ${uncomparable.hint}`);
      continue;
    }
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
    if (rule.typed) terms.push(holdsType(rule.table, rule.typed.typeColumn, rule.typed.type, null));
    // Compared as the check compares them: a domain over an enum has no `=` of its own; a generic
    // reference's text id with the parent key's text form.
    const on = and(
      rule.parentColumns.map((pc, i) => {
        if (rule.typed?.asText) return sql`${col('p', pc)}::text = ${col('c', rule.columns[i]!)}`;
        const p = rule.parent.columns.find((c) => c.name === pc);
        const c = rule.table.columns.find((c) => c.name === rule.columns[i]);
        return equals(col('p', pc), col('c', rule.columns[i]!), p?.type === c?.type ? p?.equality : null, false);
      }),
    );
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

/** A reference whose child and parent columns share a type without an equality (xml, point): named, not probed. */
function referenceWithoutEquality(rule: Rule): { message: string; hint: string } | null {
  if (rule.check !== 'orphaned-rows') return null;
  for (const [i, name] of rule.columns.entries()) {
    const c = rule.table.columns.find((x) => x.name === name);
    const p = rule.parent.columns.find((x) => x.name === rule.parentColumns[i]);
    if (c && p && c.type === p.type && !c.equality) return noEquality('reference column', name, c.type);
  }
  return null;
}
