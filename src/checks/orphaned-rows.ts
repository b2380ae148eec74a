import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import type { OrphanRule } from '../rules/types.js';
import { and, col, fragment, isAlive, isDeleted, keyAliases, rowId, rowIdOrder, tableRef, type Sql } from '../sql/build.js';
import { baseFinding, count as toCount, type Check, type Finding, type Sample } from './types.js';
import { count, pkOf, run } from '../repair/context.js';
import { createGroups, GROUPS, inBatch } from '../repair/groups.js';
import { deletedValue } from '../repair/markers.js';
import { deleteLosers } from '../repair/merge.js';
import { unreferenced, updateRows } from '../repair/rows.js';
import type { Repairer } from '../repair/types.js';

/**
 * orphaned-rows: child rows whose reference points at nothing alive.
 *
 * MATCH SIMPLE: a child with a NULL in any reference column is never an orphan. Soft-deleted
 * children are left out unless includeSoftDeleted (a deleted child of a deleted parent is the
 * normal end of a soft-delete cascade). `missingParent`: no parent row at all; `deletedParent`:
 * only soft-deleted parent rows. `groups` = distinct dangling key values.
 */
export const orphanedRows: Check<OrphanRule> = {
  id: 'orphaned-rows',
  describe: (rule) => `${rule.table.id}(${rule.columns.join(', ')}) -> ${rule.parent.id}(${rule.parentColumns.join(', ')})`,
  detect,
};

/** The child rows a rule looks at: in scope, alive, reference fully non-NULL. */
export function childScope(rule: OrphanRule, alias: string | null): Sql[] {
  const terms: Sql[] = [];
  if (rule.where) terms.push(fragment(rule.where));
  if (rule.table.softDelete && !rule.includeSoftDeleted) terms.push(isAlive(rule.table.softDelete, alias));
  terms.push(...rule.columns.map((c) => sql`${col(alias, c)} is not null`));
  return terms;
}

/** `parent p` matches child `c` on every reference column. */
export function parentMatches(rule: OrphanRule, parentAlias: string, childAlias: string): Sql {
  return and(rule.parentColumns.map((pc, i) => sql`${col(parentAlias, pc)} = ${col(childAlias, rule.columns[i]!)}`));
}

/** NOT EXISTS a live parent: the anti-join that defines an orphan. */
export function orphanPredicate(rule: OrphanRule, childAlias: string): Sql {
  const marker = rule.parent.softDelete;
  const alive = marker ? sql` and ${isAlive(marker, 'p')}` : sql``;
  return sql`not exists (select 1 from ${tableRef(rule.parent)} p where ${parentMatches(rule, 'p', childAlias)}${alive})`;
}

/** The referenced columns are unique in the parent (a primary key or unique index covers them). */
function parentKeyUnique(rule: OrphanRule): boolean {
  return rule.parent.uniqueIndexes.some((i) => i.valid && !i.predicate && i.columns.every((c) => c !== null && rule.parentColumns.includes(c)));
}

/**
 * The orphan rows with `has_parent` (a soft-deleted parent exists). With a unique parent key, one
 * LEFT JOIN finds and classifies them in a single pass; otherwise an anti-join for live parents,
 * and an EXISTS for "any parent" that only orphans pay for.
 */
function orphanRows(rule: OrphanRule, names: string[]): Sql {
  const keys = sql.join(rule.columns.map((c, i) => sql`${col('c', c)} as ${sql.id(names[i]!)}`));
  const ids = sql`${rowId(rule.table, 'c')} as id, ${rule.table.primaryKey?.length === 1 ? sql`${col('c', rule.table.primaryKey[0]!)}` : sql`row(${rowIdOrder(rule.table, 'c')})`} as ord`;
  const marker = rule.parent.softDelete;
  if (parentKeyUnique(rule)) {
    const found = sql`${col('p', rule.parentColumns[0]!)} is not null`;
    const gone = marker ? sql`(not ${found} or ${isDeleted(marker, 'p')})` : sql`not ${found}`;
    return sql`select ${keys}, ${ids}, ${found} as has_parent
      from ${tableRef(rule.table)} c left join ${tableRef(rule.parent)} p on ${parentMatches(rule, 'p', 'c')}
     where ${and(childScope(rule, 'c'))} and ${gone}`;
  }
  const hasParent = marker ? sql`exists (select 1 from ${tableRef(rule.parent)} p where ${parentMatches(rule, 'p', 'c')})` : sql`false`;
  return sql`select ${keys}, ${ids}, ${hasParent} as has_parent
      from ${tableRef(rule.table)} c
     where ${and(childScope(rule, 'c'))} and ${orphanPredicate(rule, 'c')}`;
}

async function detect(db: Db | Tx, rule: OrphanRule, options: { sample: number }): Promise<Finding | null> {
  const names = keyAliases(rule.columns.length);
  const keyCols = sql.join(names.map((n) => sql.id(n)));
  const result = await sql<{ missing: string; deleted: string; groups: string; samples: Sample[] }>`
    with o as (${orphanRows(rule, names)}),
    s as (
      select ${keyCols}, json_agg(id order by ord) as ids from o
       where (${keyCols}) in (select distinct ${keyCols} from o order by ${keyCols} limit ${options.sample})
       group by ${keyCols}
    )
    select count(*) filter (where not has_parent) as missing,
           count(*) filter (where has_parent) as deleted,
           (select count(*) from (select distinct ${keyCols} from o) d) as groups,
           (select coalesce(json_agg(json_build_object('key', json_build_array(${keyCols}), 'ids', ids) order by ${keyCols}), '[]'::json) from s) as samples
      from o
  `.execute(db);
  const row = result.rows[0]!;
  const missingParent = toCount(row.missing);
  const deletedParent = toCount(row.deleted);
  if (missingParent + deletedParent === 0) return null;
  return {
    ...baseFinding(rule, rule.columns),
    groups: toCount(row.groups),
    rows: missingParent + deletedParent,
    samples: row.samples,
    columns: rule.columns,
    references: `${rule.parent.id}(${rule.parentColumns.join(', ')})`,
    missingParent,
    deletedParent,
    inferred: rule.inferred,
  };
}

// ── repair ────────────────────────────────────────────────────────────────────────────────────
// Groups are dangling key values. Each batch locks the child rows holding them FOR UPDATE and
// re-checks that they are still orphans (a parent may have been inserted since the scan). A row
// that other rows still point at is never deleted (that would cascade or fail): it is skipped.

export const orphanRepair: Repairer<OrphanRule> = {
  groups(session, rule) {
    return createGroups(session, rule.columns.length, sql`
      select distinct ${sql.join(rule.columns.map((c, i) => sql`${col('c', c)} as ${sql.id(`k${i}`)}`))}
        from ${tableRef(rule.table)} c where ${and(childScope(rule, 'c'))} and ${orphanPredicate(rule, 'c')}`);
  },

  async batch(ctx, rule, from, to) {
    const child = rule.table;
    const pk = pkOf(child);
    const rows = ctx.nextTemp();
    await run(ctx, sql`create temp table ${sql.id(rows)} on commit drop as
      select g.n, ${sql.join(pk.map((c, i) => sql`${col('t', c)} as ${sql.id(`l${i}`)}`))}
        from ${tableRef(child)} t join ${sql.id(GROUPS)} g on ${and(rule.columns.map((c, i) => sql`${col('t', c)} = g.${sql.id(`k${i}`)}`))}
       where ${inBatch(from, to)} and ${and(childScope(rule, 't'))} and ${orphanPredicate(rule, 't')}
         for update of t`, 'plan');
    const groups = await count(ctx, sql`select distinct n from ${sql.id(rows)}`);
    const { free, skippedGroups: skipped } = rule.repair === 'delete' ? await unreferenced(ctx, child, rows) : { free: rows, skippedGroups: 0 };
    if (rule.repair === 'delete') ctx.counts.rowsDeleted += await deleteLosers(ctx, child, free);
    else if (rule.repair === 'set-null') ctx.counts.rowsUpdated += await updateRows(ctx, child, free, rule.columns.map((c) => ({ column: c, value: sql`null` })));
    else ctx.counts.rowsUpdated += await updateRows(ctx, child, free, [{ column: child.softDelete!.column, value: deletedValue(child.softDelete!) }]);
    return { groups, skipped, reason: skipped ? 'orphan rows that other rows still reference were left in place' : undefined };
  },
};
