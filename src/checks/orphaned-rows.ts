import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { repairScope } from '../rules/deleted-parent.js';
import type { OrphanRule } from '../rules/types.js';
import {
  and,
  col,
  equalityOperator,
  equals,
  fragment,
  isAlive,
  isDeleted,
  keyAliases,
  partEquality,
  qualified,
  rowId,
  rowIdOrder,
  rowIdSortKey,
  sampleBucket,
  tableRef,
  type Sql,
} from '../sql/build.js';
import {
  baseFinding,
  count as toCount,
  diagnosisCtes,
  diagnosisValue,
  withFigures,
  type Check,
  type DetectOptions,
  type Finding,
  type Sample,
} from './types.js';
import { count, pkMatches, pkOf, run, type BatchContext } from '../repair/context.js';
import { redirectable } from '../repair/merge-redirects.js';
import type { WorkTable } from '../sql/work-table.js';
import { holdsType } from '../sql/typed.js';
import { createGroups, createMembers, GROUPS, inBatch, lockBatchRows } from '../repair/groups.js';
import { deletedValue } from '../repair/markers.js';
import { deleteLosers } from '../repair/merge.js';
import { groupwise, refusedReason } from '../repair/groupwise.js';
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
  describe: (rule) =>
    `${rule.table.id}(${rule.columns.join(', ')}) -> ${rule.parent.id}(${rule.parentColumns.join(', ')})`,
  detect,
};

/**
 * Orphans whose key names a row a merge deleted are re-pointed to its survivor (see the merge
 * map); returns the rest, which the rule's own action then handles.
 */
async function redirectToSurvivors(ctx: BatchContext, rule: OrphanRule, rows: WorkTable): Promise<WorkTable> {
  const target = await redirectable(ctx, rule, rows);
  if (!target) return rows;
  const child = rule.table;
  const matches = pkMatches(child, 't', 'r', 'l');
  ctx.counts.redirected += await updateRows(
    ctx,
    child,
    target,
    rule.columns.map((c, i) => ({
      column: c,
      value: sql`(select r.${sql.id(`v${i}`)} from ${target} r where ${matches})`,
    })),
  );
  const rest = ctx.nextTemp();
  const samePk = and(pkOf(child).map((_, i) => sql`o.${sql.id(`l${i}`)} = r.${sql.id(`l${i}`)}`));
  await run(
    ctx,
    sql`
    create temp table ${rest} on commit drop as
    select *
      from ${rows} o
     where not exists (select 1 from ${target} r where ${samePk})`,
    'plan',
  );
  return rest;
}

/**
 * Before judging a batch's children, lock the soft-deleted parents of its keys FOR SHARE (blocks
 * an UPDATE that revives one until the batch commits; waits, within lock_timeout, for one being
 * revived now): a parent revived while the repair runs keeps its children. A dry run locks nothing.
 */
async function lockDeletedParents(ctx: BatchContext, rule: OrphanRule, from: number, to: number): Promise<void> {
  const marker = rule.parent.softDelete;
  if (!ctx.apply || !marker) return;
  const keyOfGroup = and(
    rule.parentColumns.map((pc, i) => parentEquals(rule, i, col('p', pc), sql`g.${sql.id(`k${i}`)}`)),
  );
  await run(
    ctx,
    sql`
    select 1
      from ${tableRef(rule.parent)} p
      join ${GROUPS} g on ${keyOfGroup}
     where ${inBatch(from, to)}
       and ${isDeleted(marker, 'p')}
       for share of p`,
    'plan',
  );
}

/**
 * The child rows a rule looks at: in scope, alive, and with a reference the foreign key checks —
 * MATCH SIMPLE: every part non-NULL; MATCH FULL: any part non-NULL (all NULL is never checked).
 */
export function childScope(rule: OrphanRule, alias: string | null): Sql[] {
  const terms: Sql[] = [];
  if (rule.where) terms.push(fragment(rule.where));
  // A polymorphic or generic reference: only rows of this type name this parent.
  if (rule.typed) terms.push(holdsType(rule.table, rule.typed.typeColumn, rule.typed.type, alias));
  if (rule.table.softDelete && !rule.includeSoftDeleted) terms.push(isAlive(rule.table.softDelete, alias));
  const notNull = rule.columns.map((c) => sql`${col(alias, c)} is not null`);
  if (rule.comparison?.matchFull && notNull.length > 1) terms.push(sql`(${sql.join(notNull, sql` or `)})`);
  else terms.push(...notNull);
  return terms;
}

/**
 * Parent column `i` equals child value `child` as the foreign key's check compares them: its own
 * operator, in the parent column's collation. Without a foreign key, the parent column type's
 * equality where both columns have that type, else pg_catalog's `=`.
 */
export function parentEquals(rule: OrphanRule, i: number, parent: Sql, child: Sql): Sql {
  // A text object_id names the parent by its key's text form (Django's GenericForeignKey).
  if (rule.typed?.asText) return sql`${parent}::text = ${child}`;
  const pair = rule.comparison?.pairs[i];
  if (pair) {
    const collated = pair.collation ? sql`(${child} collate ${qualified(pair.collation)})` : child;
    return sql`${parent} ${equalityOperator(pair.equality)} ${collated}`;
  }
  const pc = rule.parent.columns.find((c) => c.name === rule.parentColumns[i]);
  const cc = rule.table.columns.find((c) => c.name === rule.columns[i]);
  return equals(parent, child, pc && cc && pc.type === cc.type ? pc.equality : null, false);
}

/** Child column `i` holds key value `value` (a dangling key: MATCH FULL keys may hold NULLs). */
function childEquals(rule: OrphanRule, i: number, child: Sql, value: Sql): Sql {
  const column = { kind: 'column' as const, column: rule.columns[i]! };
  return equals(child, value, partEquality(rule.table, column), rule.comparison?.matchFull ?? false);
}

/** `parent p` matches child `c` on every reference column. */
export function parentMatches(rule: OrphanRule, parentAlias: string, childAlias: string): Sql {
  return and(
    rule.parentColumns.map((pc, i) => parentEquals(rule, i, col(parentAlias, pc), col(childAlias, rule.columns[i]!))),
  );
}

/**
 * NOT EXISTS a live parent: the anti-join that defines an orphan. Under MATCH FULL a reference
 * with some parts NULL (childScope leaves out all NULL) is a violation whatever the parent holds.
 */
export function orphanPredicate(rule: OrphanRule, childAlias: string): Sql {
  const marker = rule.parent.softDelete;
  const alive = marker ? sql` and ${isAlive(marker, 'p')}` : sql``;
  const nulls = rule.columns.map((c) => sql`${col(childAlias, c)} is null`);
  const anyNull = rule.comparison?.matchFull ? sql`${sql.join(nulls, sql` or `)} or ` : sql``;
  return sql`(${anyNull}not exists (
    select 1
      from ${tableRef(rule.parent)} p
     where ${parentMatches(rule, 'p', childAlias)}${alive}))`;
}

/**
 * One anti-join finds the orphans and counts them per dangling key, in parallel workers where the
 * server allows, as the hand-written NOT EXISTS does. Whether a soft-deleted parent exists is a
 * property of the key, so it is looked up once per dangling key afterwards, not once per row.
 * Samples come from the same pass (a fixed 1-in-256 hash bucket of keys); only when the bucket
 * holds too few keys are the first keys' rows fetched again.
 */
async function detect(db: Db | Tx, rule: OrphanRule, options: DetectOptions): Promise<Finding | null> {
  const child = tableRef(rule.table);
  const limit = options.sample;
  const names = keyAliases(rule.columns.length);
  const keyCols = sql.join(names.map((n) => sql.id(n)));
  const sampleKeyCols = sql.join(names.map((n) => sql.id('s', n)));
  const keys = sql.join(rule.columns.map((c, i) => sql`${col('c', c)} as ${sql.id(names[i]!)}`));
  const scope = and(childScope(rule, 'c'));
  const holdsSampleKey = and(rule.columns.map((c, i) => childEquals(rule, i, col('c', c), sql.id('s', names[i]!))));
  const bucket = sampleBucket(
    names.map((n, i) => ({
      ref: sql.id(n),
      equality: partEquality(rule.table, { kind: 'column', column: rule.columns[i]! }),
    })),
  );
  const bucketIds = bucket ? sql`array_agg(id) filter (where ${bucket})` : sql`null::text[]`;
  // A dangling key has no live parent, so a parent row that holds it is a soft-deleted one; a parent
  // table without a soft-delete marker has none.
  const parentOf = (alias: string) =>
    and(rule.parentColumns.map((pc, i) => parentEquals(rule, i, col('p', pc), sql.id(alias, names[i]!))));
  const hasParent = rule.parent.softDelete
    ? sql`exists (select 1 from ${tableRef(rule.parent)} p where ${parentOf('g')})`
    : sql`false`;
  const sampleOf = (ids: Sql) => sql`json_build_object('key', json_build_array(${keyCols}), 'ids', ${ids})`;
  const sortedIds = sql`(select json_agg(x order by ${rowIdSortKey(rule.table, sql`x`)}) from unnest(ids) x)`;
  const bucketSamples = sql`(
    select coalesce(json_agg(${sampleOf(sortedIds)} order by ${keyCols}), '[]'::json)
      from bucketed)`;
  const exactSamples = sql`(
    select coalesce(json_agg(${sampleOf(sql`ids`)} order by ${keyCols}), '[]'::json)
      from si)`;

  const samples = bucket
    ? sql`case when (select count(*) from bucketed) >= least(${limit}, (select count(*) from g))
               then ${bucketSamples}
               else ${exactSamples}
          end`
    : exactSamples;

  // Orphan rows counted per dangling key (g), the keys classified by whether a soft-deleted parent
  // holds them (classified), samples from the bucket (bucketed) or else from the first keys'
  // rows read back (s, si): a dangling key is dangling for every in-scope row that holds it.
  const result = await sql<{
    missing: string;
    deleted: string;
    groups: string;
    samples: Sample[];
    diagnosis: unknown;
  }>`
    with g as (
      select ${keyCols}, count(*) as n, ${bucketIds} as ids
        from (select ${keys}, ${rowId(rule.table, 'c')} as id
                from ${child} c
               where ${scope} and ${orphanPredicate(rule, 'c')}) o
       group by ${keyCols}
    ),
    classified as (
      select n, ${hasParent} as has_parent
        from g
    ),
    bucketed as (
      select ${keyCols}, ids
        from g
       where ids is not null
       order by ${keyCols}
       limit ${limit}
    ),
    s as (
      select ${keyCols}
        from g
       order by ${keyCols}
       limit ${limit}
    ),
    si as (
      select ${sampleKeyCols}, json_agg(${rowId(rule.table, 'c')} order by ${rowIdOrder(rule.table, 'c')}) as ids
        from s
        join ${child} c on ${holdsSampleKey}
       where ${scope}
       group by ${sampleKeyCols}
    )${diagnosisCtes(options)}
    select (select sum(n) from classified where not has_parent) as missing,
           (select sum(n) from classified where has_parent) as deleted,
           (select count(*) from g) as groups,
           ${samples} as samples,
           ${diagnosisValue(options)} as diagnosis
  `.execute(db);
  const row = result.rows[0]!;
  const missingParent = toCount(row.missing);
  const deletedParent = toCount(row.deleted);
  if (missingParent + deletedParent === 0) return null;
  return {
    ...baseFinding(rule, rule.columns),
    // Children kept on purpose (deletedParent: warning) make a warning when nothing else is wrong.
    ...(rule.deletedParent === 'warning' && missingParent === 0 ? { severity: 'warning' as const } : {}),
    groups: toCount(row.groups),
    rows: missingParent + deletedParent,
    samples: row.samples,
    columns: rule.columns,
    references: `${rule.parent.id}(${rule.parentColumns.join(', ')})`,
    missingParent,
    deletedParent,
    inferred: rule.inferred,
    ...(rule.typed
      ? { polymorphic: { typeColumn: rule.typed.typeColumn, idColumn: rule.columns[0]!, type: rule.typed.type } }
      : {}),
    ...withFigures(options, row.diagnosis),
  };
}

/** Row `t` holds group `g`'s dangling key. */
function onDanglingKey(rule: OrphanRule): Sql {
  return and(rule.columns.map((c, i) => childEquals(rule, i, col('t', c), sql`g.${sql.id(`k${i}`)}`)));
}

// ── repair ────────────────────────────────────────────────────────────────────────────────────
// Groups are dangling key values. Each batch locks the child rows holding them FOR UPDATE and
// re-checks that they are still orphans (a parent may have been inserted since the scan). A row
// that other rows still point at is never deleted (that would cascade or fail): it is skipped.

export const orphanRepair: Repairer<OrphanRule> = {
  async groups(session, declared) {
    const rule = repairScope(declared);
    const keys = sql.join(rule.columns.map((c, i) => sql`${col('c', c)} as ${sql.id(`k${i}`)}`));
    // The dangling key values: the same groups detect() counts.
    const danglingKeys = sql`
      select distinct ${keys}
        from ${tableRef(rule.table)} c
       where ${and(childScope(rule, 'c'))} and ${orphanPredicate(rule, 'c')}`;
    const total = await createGroups(session, rule.columns.length, danglingKeys);
    // The orphan rows, listed once by primary key: each batch then reaches them by index, even where
    // nothing indexes the reference columns (a scan of the child per batch otherwise).
    await createMembers(session, rule.table, onDanglingKey(rule), and(childScope(rule, 't')));
    return total;
  },

  async batch(ctx, declared, from, to) {
    const rule = repairScope(declared);
    const child = rule.table;
    const pk = pkOf(child);
    const rows = ctx.nextTemp();
    await lockDeletedParents(ctx, rule, from, to);
    // Still in scope, still holding the key, still without a live parent (one may have been inserted).
    await lockBatchRows(ctx, child, rows, {
      from,
      to,
      picked: sql`g.n, ${sql.join(pk.map((c, i) => sql`${col('t', c)} as ${sql.id(`l${i}`)}`))}`,
      onKey: onDanglingKey(rule),
      still: sql`${and(childScope(rule, 't'))} and ${orphanPredicate(rule, 't')}`,
      pkPrefix: 'l',
      byKey: child.indexedLeading.includes(rule.columns[0]!),
    });
    const groups = await count(ctx, sql`select distinct n from ${rows}`);
    const orphans = await redirectToSurvivors(ctx, rule, rows);
    const {
      free,
      skippedGroups: skipped,
      reason,
    } = rule.repair === 'delete'
      ? await unreferenced(ctx, child, orphans, (by) => `orphan rows still referenced by ${by} were left in place`)
      : { free: orphans, skippedGroups: 0, reason: undefined };
    // A group the server refuses (a CHECK that wants the reference, a raising trigger …) is skipped alone.
    const refused = await groupwise(ctx, free, async (m) => {
      if (rule.repair === 'delete') ctx.counts.rowsDeleted += await deleteLosers(ctx, child, m);
      else if (rule.repair === 'set-null')
        ctx.counts.rowsUpdated += await updateRows(
          ctx,
          child,
          m,
          rule.columns.map((c) => ({ column: c, value: sql`null` })),
        );
      else
        ctx.counts.rowsUpdated += await updateRows(ctx, child, m, [
          { column: child.softDelete!.column, value: deletedValue(child.softDelete!) },
        ]);
    });
    return {
      groups,
      skipped: skipped + refused.length,
      refused,
      reason: [refusedReason(refused, rule.repair), reason].filter(Boolean).join('; ') || undefined,
    };
  },
};
