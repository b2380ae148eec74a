import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import type { DuplicateRule, KeyPart } from '../rules/types.js';
import { noEquality } from '../errors.js';
import { RuleCannotRun } from './rule-error.js';
import { keyLabel } from '../rules/types.js';
import {
  and,
  col,
  fragment,
  groupKeyExpr,
  isAlive,
  keyAliases,
  keyExpr,
  keysEqual,
  partEquality,
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
import type { Table } from '../catalog/types.js';
import { count, pkMatches, pkOf, run, type BatchContext } from '../repair/context.js';
import { createGroups, createMembers, GROUPS, lockBatchRows, MEMBERS } from '../repair/groups.js';
import { deletedValue } from '../repair/markers.js';
import { deleteLosers, mergeRows } from '../repair/merge.js';
import { groupwise, refusedReason } from '../repair/groupwise.js';
import { heldLosers, unreferenced, updateRows } from '../repair/rows.js';
import type { PlanSample, Repairer } from '../repair/types.js';
import type { WorkTable } from '../sql/work-table.js';
import { CHANGED_SINCE_THE_PLAN } from '../repair/context.js';

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
  const terms = rowScope(rule, alias);
  if (!rule.nullsNotDistinct) terms.push(...rule.key.map((k) => sql`${keyExpr(k, alias)} is not null`));
  return terms;
}

/** The rows a rule looks at whatever their key holds: its `where` scope, and live rows unless includeSoftDeleted. */
export function rowScope(rule: DuplicateRule, alias: string | null): Sql[] {
  const terms: Sql[] = [];
  if (rule.where) terms.push(fragment(rule.where));
  if (rule.table.softDelete && !rule.includeSoftDeleted) terms.push(isAlive(rule.table.softDelete, alias));
  return terms;
}

async function detect(db: Db | Tx, rule: DuplicateRule, options: DetectOptions): Promise<Finding | null> {
  const result = await sql<DetectRow>`${detectStatement(rule, options, ownGroups(rule, options))}`.execute(db);
  return findingOf(rule, options, result.rows[0]!);
}

/** What a detect statement selects: the counts, the samples and the diagnosis' figures. */
export interface DetectRow {
  groups: string;
  rows: string;
  samples: Sample[];
  diagnosis: unknown;
}

/** A detect statement's row as the rule's finding (null when it found no group). */
export function findingOf(rule: DuplicateRule, options: DetectOptions, row: DetectRow): Finding | null {
  if (toCount(row.groups) === 0) return null;
  return {
    ...baseFinding(rule, rule.key.map(keyLabel)),
    groups: toCount(row.groups),
    rows: toCount(row.rows),
    samples: row.samples,
    ...withFigures(options, row.diagnosis),
  };
}

/**
 * The fixed hash bucket samples are collected from, over the key parts as `refs` name them — none
 * where an index serves the key (samples are then looked up by key) or a part has no hash.
 */
export function bucketOf(rule: DuplicateRule, refs: Sql[]): Sql | null {
  if (keyIndexed(rule)) return null;
  return sampleBucket(refs.map((ref, i) => ({ ref, equality: partEquality(rule.table, rule.key[i]!) })));
}

/**
 * The rule's own groups: key values held by more than one in-scope row, with exact counts from
 * that one aggregate pass over the table. Columns: the key as keyAliases(), n, ids (the bucket's
 * row ids, else NULL) and the diagnosis' aggregates.
 */
function ownGroups(rule: DuplicateRule, options: DetectOptions): Sql {
  const names = keyAliases(rule.key.length);
  const keyCols = sql.join(names.map((n) => sql.id(n)));
  const selectKeys = sql.join(
    rule.key.map((k, i) => sql`${groupKeyExpr(rule.table, k, null)} as ${sql.id(names[i]!)}`),
  );
  const scope = and(duplicateScope(rule, null));
  // Where an index serves the key, the aggregate reads the key alone (an index-only scan is then
  // possible) and samples always come from the join back to the table (a few index lookups).
  // Otherwise the aggregate also collects the ids of the groups whose key falls in a fixed 1-in-256
  // hash bucket (bounded memory, deterministic); only when that bucket holds too few groups does
  // the join back run — lazily, in detectStatement's CASE.
  const bucket = bucketOf(
    rule,
    names.map((n) => sql.id(n)),
  );
  // The diagnosis may want more from the aggregate (src/diagnosis/duplicates.ts).
  const extra = options.diagnosis?.aggregates ?? [];
  const idColumn = bucket || extra.length ? sql`, ${rowId(rule.table, null)} as id` : sql``;
  const bucketIds = bucket ? sql`array_agg(id) filter (where ${bucket})` : sql`null::text[]`;
  const extras = extra.map((a) => sql`, ${a.value} as ${sql.id(a.name)}`);
  return sql`
      select ${keyCols}, count(*) as n, ${bucketIds} as ids${sql.join(extras, sql``)}
        from (select ${selectKeys}${idColumn} from ${tableRef(rule.table)} where ${scope}) k
       group by ${keyCols}
      having count(*) > 1`;
}

/**
 * The rule's detect statement over `groups`, the body of its `g`: the key values held by more than
 * one in-scope row (columns as ownGroups() selects them). Whether they come from the rule's own
 * pass or from a pass shared with other rules (duplicate-chain.ts), the rest reads them alike.
 */
export function detectStatement(rule: DuplicateRule, options: DetectOptions, groups: Sql): Sql {
  const t = tableRef(rule.table);
  const limit = options.sample;
  const names = keyAliases(rule.key.length);
  const keyCols = sql.join(names.map((n) => sql.id(n)));
  const sampleKeyCols = sql.join(names.map((n) => sql.id('s', n)));
  const rowScope = and(duplicateScope(rule, 'r'));
  groupable(rule);
  const joinOn = keysEqual(
    rule.table,
    rule.key,
    rule.key.map((k) => groupKeyExpr(rule.table, k, 'r')),
    names.map((n) => sql.id('s', n)),
    rule.nullsNotDistinct,
  );
  const collect =
    bucketOf(
      rule,
      names.map((n) => sql.id(n)),
    ) !== null;
  const sampleOf = (ids: Sql) => sql`json_build_object('key', json_build_array(${keyCols}), 'ids', ${ids})`;
  const sortedIds = sql`(select json_agg(x order by ${rowIdSortKey(rule.table, sql`x`)}) from unnest(ids) x)`;
  const exactSamples = sql`(
    select coalesce(json_agg(${sampleOf(sql`ids`)} order by ${keyCols}), '[]'::json)
      from si)`;
  const bucketSamples = sql`(
    select coalesce(json_agg(${sampleOf(sortedIds)} order by ${keyCols}), '[]'::json)
      from bucketed)`;
  const bucketIsEnough = sql`(select count(*) from bucketed) >= least(${limit}, (select count(*) from g))`;
  const samples = collect
    ? sql`case when ${bucketIsEnough} then ${bucketSamples} else ${exactSamples} end`
    : exactSamples;

  // The key values held by more than one in-scope row (g); the first `limit` groups in key order
  // (s) and their rows read back by key (si); the bucket's first groups (bucketed) when the
  // aggregate collected their ids.
  return sql`
    with g as (${groups}
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
      select ${sampleKeyCols}, json_agg(${rowId(rule.table, 'r')} order by ${rowIdOrder(rule.table, 'r')}) as ids
        from s
        join ${t} r on ${joinOn} and ${rowScope}
       group by ${sampleKeyCols}
    )${diagnosisCtes(options)}
    select (select count(*) from g) as groups,
           (select coalesce(sum(n - 1), 0) from g) as rows,
           ${samples} as samples,
           ${diagnosisValue(options)} as diagnosis
  `;
}

// ── repair ────────────────────────────────────────────────────────────────────────────────────
// Groups are walked in key order. Each batch locks the rows of its groups FOR UPDATE and ranks
// them again under the lock (writers may have added or removed rows since the scan): the first
// row by `keep` survives, the others are merged into it (children re-pointed), deleted, or
// soft-deleted.

export const duplicateRepair: Repairer<DuplicateRule> = {
  async groups(session, rule) {
    groupable(rule);
    const groupCols = sql.join(rule.key.map((_, i) => sql.id(`k${i}`)));
    const keys = sql.join(rule.key.map((k, i) => sql`${groupKeyExpr(rule.table, k, null)} as ${sql.id(`k${i}`)}`));
    const scope = and(duplicateScope(rule, null));
    // Key values held by more than one in-scope row: the same groups detect() counts.
    const duplicatedKeys = sql`
      select ${groupCols}
        from (select ${keys} from ${tableRef(rule.table)} where ${scope}) s
       group by ${groupCols}
      having count(*) > 1`;
    const total = await createGroups(session, rule.key.length, duplicatedKeys);
    await createMembers(session, rule.table, onGroupKey(rule), and(duplicateScope(rule, 't')));
    return total;
  },

  // The groups and members just listed are detect()'s answer: the same counts, and the same
  // samples (the bucket's first groups in key order, else the first groups in key order).
  async finding(session, rule, sample) {
    const pk = pkOf(rule.table);
    const pks = sql.join(pk.map((_, i) => sql`m.${sql.id(`p${i}`)}`));
    const memberId = pk.length === 1 ? pks : sql`json_build_array(${pks})`;
    const keys = sql.join(rule.key.map((_, i) => sql`g.${sql.id(`k${i}`)}`));
    // The same bucket as detect() (none where an index serves the key or a part has no hash).
    const bucket = keyIndexed(rule)
      ? null
      : sampleBucket(
          rule.key.map((k, i) => ({ ref: sql`g.${sql.id(`k${i}`)}`, equality: partEquality(rule.table, k) })),
        );
    const inBucket = bucket ?? sql`false`;
    const sampleJson = sql`json_build_object('key', key, 'ids', ids)`;
    const inBucketed = sql`(select count(*) from bucketed)`;
    const wanted = sql`least(${sample}, (select count(*) from ${GROUPS}))`;
    // Counts of the listed groups and members, and the sample groups' keys and member ids: the
    // bucket's first groups when there are enough of them, else the first groups (as detect()).
    const { rows } = await sql<{ groups: string; members: string; samples: Sample[] }>`
      with bucketed as (
        select n
          from ${GROUPS} g
         where ${inBucket}
         order by n
         limit ${sample}
      ),
      chosen as (
        select n
          from bucketed
         where ${inBucketed} >= ${wanted}
         union all
        select n
          from (select n from ${GROUPS} order by n limit ${sample}) f
         where ${inBucketed} < ${wanted}
      ),
      s as (
        select g.n, json_build_array(${keys}) as key, json_agg(${memberId} order by ${pks}) as ids
          from chosen c
          join ${GROUPS} g on g.n = c.n
          join ${MEMBERS} m on m.n = g.n
         group by g.n, ${keys}
      )
      select (select count(*) from ${GROUPS}) as groups,
             (select count(*) from ${MEMBERS}) as members,
             (select coalesce(json_agg(${sampleJson} order by n), '[]'::json) from s) as samples
    `.execute(session);
    const row = rows[0]!;
    const groups = toCount(row.groups);
    if (groups === 0) return null;
    return {
      ...baseFinding(rule, rule.key.map(keyLabel)),
      groups,
      rows: toCount(row.members) - groups,
      samples: row.samples,
    };
  },

  async batch(ctx, rule, from, to, sample) {
    const table = rule.table;
    const pk = pkOf(table);
    const rows = ctx.nextTemp();
    const pkCols = sql.join(pk.map((_, i) => sql.id(`p${i}`)));
    const keepOrder = rule.keep.map((o, i) => {
      const nulls = o.nulls ? sql.raw(` nulls ${o.nulls}`) : sql``;
      return sql`${sql.id(`o${i}`)} ${sql.raw(o.direction)}${nulls}`;
    });
    const keep = sql.join([...keepOrder, ...pk.map((_, i) => sql`${sql.id(`p${i}`)}`)]);
    const pickedPk = sql.join(pk.map((c, i) => sql`${col('t', c)} as ${sql.id(`p${i}`)}`));
    const pickedKeep = rule.keep.length
      ? sql`, ${sql.join(rule.keep.map((o, i) => sql`${col('t', o.column)} as ${sql.id(`o${i}`)}`))}`
      : sql``;
    await lockBatchRows(ctx, table, rows, {
      from,
      to,
      picked: sql`g.n, ${pickedPk}${pickedKeep}`,
      onKey: onGroupKey(rule),
      still: and(duplicateScope(rule, 't')),
      pkPrefix: 'p',
      byKey: keyIndexed(rule),
      children: rule.repair === 'merge',
    });
    // Applying a reviewed plan: a group whose rows changed since is left as it is.
    const changed = (await ctx.plan?.checkLocked?.(ctx, rule, rows)) ?? 0;
    const changedReason = changed ? CHANGED_SINCE_THE_PLAN : undefined;
    const map = ctx.nextTemp();
    const losers = sql.join(pk.map((_, i) => sql`${sql.id(`p${i}`)} as ${sql.id(`l${i}`)}`));
    const survivors = sql.join(pk.map((_, i) => sql.id(`s${i}`)));
    const firstByKeep = sql.join(pk.map((_, i) => sql`first_value(${sql.id(`p${i}`)}) over w as ${sql.id(`s${i}`)}`));
    // Each group's rows ranked by `keep` under the lock: every row but the first is a loser,
    // mapped to the first (its survivor).
    await run(
      ctx,
      sql`create temp table ${map} on commit drop as
      select n, ${losers}, ${survivors}
        from (select n, ${pkCols},
                     ${firstByKeep},
                     row_number() over w as rn
                from ${rows}
              window w as (partition by n order by ${keep})) x
       where rn > 1`,
      'plan',
    );
    const groups = await count(ctx, sql`select distinct n from ${map}`);
    await ctx.plan?.planned?.(ctx, rule, rows, map);
    const samples = sample > 0 ? await planSamples(ctx, rule, map, sample) : [];
    if (rule.repair === 'merge') {
      // A group the server refuses (CHECK, exclusion, raising trigger, restricting key) is skipped alone.
      const refused = await groupwise(ctx, map, async (m) => {
        if (rule.fill) ctx.counts.rowsUpdated += await fillSurvivors(ctx, table, m);
        ctx.counts.rowsDeleted += await mergeRows(ctx, table, m);
      });
      const held = await heldLosers(
        ctx,
        table,
        map,
        refused.map((r) => r.n),
      );
      return {
        groups,
        skipped: refused.length + held.skipped + changed,
        samples,
        refused,
        reason: [refusedReason(refused), held.reason, changedReason].filter(Boolean).join('; ') || undefined,
      };
    }
    // delete / soft-delete: no re-pointing, so a loser something still points at is left alone.
    const {
      free,
      skippedGroups: skipped,
      reason,
    } = await unreferenced(
      ctx,
      table,
      map,
      (by) => `losers still referenced by ${by} (use repair: merge to re-point their children)`,
    );
    if (rule.repair === 'delete') ctx.counts.rowsDeleted += await deleteLosers(ctx, table, free);
    else
      ctx.counts.rowsUpdated += await updateRows(ctx, table, free, [
        { column: table.softDelete!.column, value: deletedValue(table.softDelete!) },
      ]);
    return {
      groups,
      skipped: skipped + changed,
      samples,
      reason: [reason, changedReason].filter(Boolean).join('; ') || undefined,
    };
  },
};

/**
 * GROUP BY compares with each type's default equality: a key part from an index whose operator
 * class has another equality cannot be grouped that way, and is refused rather than miscounted.
 */
export function groupable(rule: { table: Table; key: KeyPart[] }): void {
  const none = rule.key.find((k) => partEquality(rule.table, k) === null);
  if (none) {
    const type = none.kind === 'column' ? rule.table.columns.find((c) => c.name === none.column)?.type : undefined;
    if (type) {
      const { message, hint } = noEquality('key part', keyLabel(none), type);
      throw new RuleCannotRun(message, hint);
    }
  }
  const odd = rule.key.filter((k) => partEquality(rule.table, k)?.groupable === false);
  if (!odd.length) return;
  throw new RuleCannotRun(
    `key part ${odd.map(keyLabel).join(', ')} compares with ${odd
      .map((k) => partEquality(rule.table, k)!.operator)
      .map((o) => `${o.schema}.${o.name}`)
      .join(', ')}, an operator class's own equality that GROUP BY cannot use`,
    "Declare the rule with an expression key whose type's default equality is the index's (e.g. a cast).",
  );
}

/** Row `t` holds group `g`'s key. */
function onGroupKey(rule: DuplicateRule): Sql {
  return keysEqual(
    rule.table,
    rule.key,
    rule.key.map((k) => groupKeyExpr(rule.table, k, 't')),
    rule.key.map((_, i) => sql`g.${sql.id(`k${i}`)}`),
    rule.nullsNotDistinct,
  );
}

/** An index leads with the key's first column, so looking rows up by key is cheap. */
export function keyIndexed(rule: DuplicateRule): boolean {
  const first = rule.key[0];
  return first?.kind === 'column' && rule.table.indexedLeading.includes(first.column);
}

/** Survivor and losers of the first groups of a batch, for the plan's samples. */
async function planSamples(
  ctx: BatchContext,
  rule: DuplicateRule,
  map: WorkTable,
  limit: number,
): Promise<PlanSample[]> {
  const pkLen = pkOf(rule.table).length;
  const cols = (p: string) => sql.join(Array.from({ length: pkLen }, (_, i) => sql.id(`${p}${i}`)));
  const id = (p: string) => (pkLen === 1 ? sql.id(`${p}0`) : sql`json_build_array(${cols(p)})`);
  const keys = sql.join(rule.key.map((_, i) => sql`g.${sql.id(`k${i}`)}`));
  // Per group: its key, its survivor and its losers, for the first `limit` groups of the batch.
  const { rows } = await run<PlanSample>(
    ctx,
    sql`
    select json_build_array(${keys}) as key,
           (array_agg(${id('s')}))[1] as survivor,
           json_agg(${id('l')} order by ${cols('l')}) as losers
      from ${map} m
      join ${GROUPS} g on g.n = m.n
     group by g.n, ${keys}
     order by g.n
     limit ${limit}`,
    'plan',
  );
  return rows;
}

/** fill: where a survivor's column is NULL, take the first non-NULL value among its losers. */
async function fillSurvivors(ctx: BatchContext, table: Table, map: WorkTable): Promise<number> {
  const pk = pkOf(table);
  const cols = table.columns.filter((c) => !pk.includes(c.name) && !c.generated);
  if (!cols.length) return 0;
  const filled = ctx.nextTemp();
  const survivor = sql.join(pk.map((_, i) => sql`m.${sql.id(`s${i}`)}`));
  const survivorAsL = sql.join(pk.map((_, i) => sql`m.${sql.id(`s${i}`)} as ${sql.id(`l${i}`)}`));
  const loserOrder = sql.join(pk.map((p) => col('x', p)));
  const firstValues = sql.join(
    cols.map((c) => {
      const value = col('x', c.name);
      const firstNonNull = sql`(array_agg(${value} order by ${loserOrder}) filter (where ${value} is not null))[1]`;
      return sql`${firstNonNull} as ${sql.id(c.name)}`;
    }),
  );
  // Per survivor, each column's first non-NULL value among its losers (in primary key order).
  await run(
    ctx,
    sql`create temp table ${filled} on commit drop as
    select ${survivorAsL},
           ${firstValues}
      from ${map} m
      join ${tableRef(table)} x on ${pkMatches(table, 'x', 'm', 'l')}
     group by ${survivor}`,
    'plan',
  );
  const gaps = sql.join(
    cols.map((c) => sql`(${col('t', c.name)} is null and ${col('f', c.name)} is not null)`),
    sql` or `,
  );
  const needs = sql`exists (
      select 1
        from ${filled} f
       where ${pkMatches(table, 't', 'f', 'l')}
         and (${gaps}))`;
  const targets = ctx.nextTemp();
  const targetPk = sql.join(pk.map((c, i) => sql`${col('t', c)} as ${sql.id(`l${i}`)}`));
  // The survivors that have a NULL a loser can fill.
  await run(
    ctx,
    sql`create temp table ${targets} on commit drop as
    select ${targetPk}
      from ${tableRef(table)} t
     where ${needs}`,
    'plan',
  );
  const filledValue = (c: string) =>
    sql`(select ${col('f', c)} from ${filled} f where ${pkMatches(table, 't', 'f', 'l')})`;
  return updateRows(
    ctx,
    table,
    targets,
    cols.map((c) => ({
      column: c.name,
      value: sql`coalesce(${col('t', c.name)}, ${filledValue(c.name)})`,
    })),
  );
}
