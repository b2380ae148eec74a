import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { keyLabel, type SoftDeleteRule } from '../rules/types.js';
import { and, fragment, isDeleted, keyAliases, keyExpr, rowId, rowIdOrder, tableRef, type Sql } from '../sql/build.js';
import { baseFinding, count, type Check, type Finding, type Sample } from './types.js';

/**
 * soft-delete-conflicts: a key value v is in conflict when a soft-deleted row holds v and either
 * (a) a unique index that counts deleted rows enforces the key — the deleted row blocks every
 * future insert of v (the 23505 after an ORM hid the row and tried to "re-create" it), or
 * (b) the rule was declared and another row, live or deleted, also holds v.
 * `groups` = key values in conflict; `rows` = soft-deleted rows holding them.
 */
export const softDeleteConflicts: Check<SoftDeleteRule> = {
  id: 'soft-delete-conflicts',
  describe: (rule) => `${rule.table.id}(${rule.key.map(keyLabel).join(', ')})`,
  detect,
};

export function conflictScope(rule: SoftDeleteRule, alias: string | null): Sql[] {
  const terms: Sql[] = [];
  if (rule.where) terms.push(fragment(rule.where));
  if (!rule.nullsNotDistinct) terms.push(...rule.key.map((k) => sql`${keyExpr(k, alias)} is not null`));
  return terms;
}

async function detect(db: Db | Tx, rule: SoftDeleteRule, options: { sample: number }): Promise<Finding | null> {
  const marker = rule.table.softDelete!;
  const names = keyAliases(rule.key.length);
  const keyCols = sql.join(names.map((n) => sql.id(n)));
  const enforced = rule.enforcedBy !== null;
  // (a) applies with an enforcing index; (b) only to declared rules.
  const conflict = enforced ? sql`true` : rule.source === 'discovered' ? sql`false` : sql`count(*) > 1`;
  const result = await sql<{ groups: string; rows: string; samples: Sample[] }>`
    with k as (
      select ${sql.join(rule.key.map((p, i) => sql`${keyExpr(p, null)} as ${sql.id(names[i]!)}`))},
             ${isDeleted(marker, null)} as deleted, ${rowId(rule.table, null)} as id, row(${rowIdOrder(rule.table, null)}) as ord
        from ${tableRef(rule.table)} where ${and(conflictScope(rule, null))}
    ),
    g as (
      select ${keyCols}, count(*) filter (where deleted) as del
        from k group by ${keyCols}
      having count(*) filter (where deleted) > 0 and (${conflict})
    ),
    s as (select ${keyCols} from g order by ${keyCols} limit ${options.sample})
    select (select count(*) from g) as groups,
           (select coalesce(sum(del), 0) from g) as rows,
           (select coalesce(json_agg(json_build_object('key', json_build_array(${keyCols}), 'ids',
               (select json_agg(k.id order by k.ord) from k where k.deleted and ${and(names.map((n) => sql`k.${sql.id(n)} is not distinct from s.${sql.id(n)}`))}))
               order by ${keyCols}), '[]'::json) from s) as samples
  `.execute(db);
  const row = result.rows[0]!;
  if (count(row.groups) === 0) return null;
  return { ...baseFinding(rule, rule.key.map(keyLabel)), groups: count(row.groups), rows: count(row.rows), samples: row.samples };
}
