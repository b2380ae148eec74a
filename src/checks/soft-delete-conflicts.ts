import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { keyLabel, type SoftDeleteRule } from '../rules/types.js';
import {
  and,
  col,
  equals,
  fragment,
  groupKeyExpr,
  isDeleted,
  keyAliases,
  keyExpr,
  keysEqual,
  partEquality,
  rowId,
  rowIdOrder,
  tableRef,
  type Sql,
} from '../sql/build.js';
import { count, pkOf, run } from '../repair/context.js';
import { createGroups, createMembers, lockBatchRows, recordSkipped } from '../repair/groups.js';
import { groupwise, refusedReason } from '../repair/groupwise.js';
import { aliveValue } from '../repair/markers.js';
import { deleteLosers, mergeRows } from '../repair/merge.js';
import { heldLosers, unreferenced, updateRows } from '../repair/rows.js';
import type { Repairer } from '../repair/types.js';
import type { WorkTable } from '../sql/work-table.js';
import { baseFinding, count as toCount, type Check, type Finding, type Sample } from './types.js';

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

/**
 * (a) applies with an enforcing index: any deleted row holding the key blocks it. (b) applies only
 * to declared rules: a deleted row in conflict with another row holding the same key.
 */
function conflictCondition(rule: SoftDeleteRule): Sql {
  if (rule.enforcedBy !== null) return sql`true`;
  return rule.source === 'discovered' ? sql`false` : sql`count(*) > 1`;
}

async function detect(db: Db | Tx, rule: SoftDeleteRule, options: { sample: number }): Promise<Finding | null> {
  const marker = rule.table.softDelete!;
  const names = keyAliases(rule.key.length);
  const keyCols = sql.join(names.map((n) => sql.id(n)));
  const keys = sql.join(rule.key.map((p, i) => sql`${groupKeyExpr(rule.table, p, null)} as ${sql.id(names[i]!)}`));
  const conflict = conflictCondition(rule);
  const sameKey = and(
    names.map((n, i) => equals(sql`k.${sql.id(n)}`, sql`s.${sql.id(n)}`, partEquality(rule.table, rule.key[i]!), true)),
  );
  const deletedIds = sql`(
    select json_agg(k.id order by k.ord)
      from k
     where k.deleted and ${sameKey})`;
  const sampleJson = sql`json_build_object('key', json_build_array(${keyCols}), 'ids', ${deletedIds})`;

  // Every in-scope row's key, marker, id and sort order (k), read once; the key values in conflict
  // with the number of deleted rows holding each (g); the first `limit` of them (s), whose deleted
  // rows' ids are the samples.
  const result = await sql<{ groups: string; rows: string; samples: Sample[] }>`
    with k as (
      select ${keys},
             ${isDeleted(marker, null)} as deleted,
             ${rowId(rule.table, null)} as id,
             row(${rowIdOrder(rule.table, null)}) as ord
        from ${tableRef(rule.table)}
       where ${and(conflictScope(rule, null))}
    ),
    g as (
      select ${keyCols}, count(*) filter (where deleted) as del
        from k
       group by ${keyCols}
      having count(*) filter (where deleted) > 0 and (${conflict})
    ),
    s as (
      select ${keyCols}
        from g
       order by ${keyCols}
       limit ${options.sample}
    )
    select (select count(*) from g) as groups,
           (select coalesce(sum(del), 0) from g) as rows,
           (select coalesce(json_agg(${sampleJson} order by ${keyCols}), '[]'::json) from s) as samples
  `.execute(db);
  const row = result.rows[0]!;
  if (toCount(row.groups) === 0) return null;
  return {
    ...baseFinding(rule, rule.key.map(keyLabel)),
    groups: toCount(row.groups),
    rows: toCount(row.rows),
    samples: row.samples,
  };
}

/** Row `t` holds group `g`'s key. */
function onGroupKey(rule: SoftDeleteRule): Sql {
  return keysEqual(
    rule.table,
    rule.key,
    rule.key.map((k) => groupKeyExpr(rule.table, k, 't')),
    rule.key.map((_, i) => sql`g.${sql.id(`k${i}`)}`),
    rule.nullsNotDistinct,
  );
}

// ── repair ────────────────────────────────────────────────────────────────────────────────────
// purge-deleted: a deleted row whose key a live row holds is merged into that live row (children
// re-pointed), then removed; a deleted row holding its key alone is hard-deleted, or skipped when
// rows still reference it. revive: where no live row holds the key, the newest deleted row is
// un-deleted and the others are merged into it; keys that a live row holds are skipped.

export const softDeleteRepair: Repairer<SoftDeleteRule> = {
  async groups(session, rule) {
    const marker = rule.table.softDelete!;
    const names = rule.key.map((_, i) => sql.id(`k${i}`));
    const keys = sql.join(rule.key.map((p, i) => sql`${groupKeyExpr(rule.table, p, null)} as ${names[i]!}`));
    // The key values in conflict: the same groups detect() counts.
    const conflictKeys = sql`
      select ${sql.join(names)}
        from (select ${keys}, ${isDeleted(marker, null)} as deleted
                from ${tableRef(rule.table)}
               where ${and(conflictScope(rule, null))}) k
       group by ${sql.join(names)}
      having count(*) filter (where deleted) > 0 and (${conflictCondition(rule)})`;
    const total = await createGroups(session, rule.key.length, conflictKeys);
    // Each group's rows, listed once by primary key: a batch then reaches them by index, even where
    // no index serves the key for deleted rows (a partial one on live rows does not).
    await createMembers(session, rule.table, onGroupKey(rule), and(conflictScope(rule, 't')));
    return total;
  },

  async batch(ctx, rule, from, to) {
    const table = rule.table;
    const marker = table.softDelete!;
    const pk = pkOf(table);
    const rows = ctx.nextTemp();
    const newest = marker.kind === 'timestamp' ? sql`${sql.id('m')} desc nulls last, ` : sql``;
    const first = rule.key[0];
    const pickedPk = sql.join(pk.map((c, i) => sql`${col('t', c)} as ${sql.id(`p${i}`)}`));
    await lockBatchRows(ctx, table, rows, {
      from,
      to,
      onKey: onGroupKey(rule),
      still: and(conflictScope(rule, 't')),
      pkPrefix: 'p',
      picked: sql`g.n, ${pickedPk}, ${isDeleted(marker, 't')} as deleted, ${col('t', marker.column)} as m`,
      byKey: first?.kind === 'column' && table.indexedLeading.includes(first.column),
      children: true,
    });
    const groups = await count(ctx, sql`select distinct n from ${rows} where deleted`);
    const pks = sql.join(pk.map((_, i) => sql.id(`p${i}`)));
    const firstPk = (alias: string) =>
      sql.join(pk.map((_, i) => sql`first_value(${sql.id(`p${i}`)}) over w as ${sql.id(`${alias}${i}`)}`));
    const asLoser = sql.join(pk.map((_, i) => sql`${sql.id(`p${i}`)} as ${sql.id(`l${i}`)}`));
    const sCols = sql.join(pk.map((_, i) => sql.id(`s${i}`)));
    const hasLive = sql`n in (select n from ${rows} where not deleted)`;

    if (rule.repair === 'purge-deleted') {
      // Deleted rows that share their key with a live row: merge into the first live row.
      const map = ctx.nextTemp();
      await run(
        ctx,
        sql`create temp table ${map} on commit drop as
        select n, ${asLoser}, ${sCols}
          from (select n, deleted, ${pks}, ${firstPk('s')}
                  from ${rows}
                 where ${hasLive}
                window w as (partition by n order by deleted, ${pks})) x
         where deleted`,
        'plan',
      );
      // A group the server refuses (CHECK, exclusion, raising trigger, restricting key) is skipped alone.
      const refusedMerges = await groupwise(ctx, map, async (m) => {
        ctx.counts.rowsDeleted += await mergeRows(ctx, table, m);
      });
      const held = await heldLosers(
        ctx,
        table,
        map,
        refusedMerges.map((r) => r.n),
      );
      // Deleted rows alone with their key: hard-delete unless something still points at them.
      const lone = ctx.nextTemp();
      await run(
        ctx,
        sql`create temp table ${lone} on commit drop as
        select n, ${asLoser}
          from ${rows}
         where deleted and not ${hasLive}`,
        'plan',
      );
      const {
        free,
        skippedGroups: skipped,
        reason,
      } = await unreferenced(
        ctx,
        table,
        lone,
        (by) => `soft-deleted rows alone with their key but still referenced by ${by} were left in place`,
      );
      const refusedDeletes = await groupwise(ctx, free, async (m) => {
        ctx.counts.rowsDeleted += await deleteLosers(ctx, table, m);
      });
      const refused = [...refusedMerges, ...refusedDeletes];
      return {
        groups,
        skipped: skipped + held.skipped + refused.length,
        refused,
        reason: [refusedReason(refused, 'purge'), held.reason, reason].filter(Boolean).join('; ') || undefined,
      };
    }

    // revive: only keys no live row holds; the newest deleted row survives and is un-deleted.
    const map = ctx.nextTemp();
    const newestFirst = sql`${newest}${sql.join(pk.map((_, i) => sql`${sql.id(`p${i}`)} desc`))}`;
    await run(
      ctx,
      sql`create temp table ${map} on commit drop as
      select n, ${asLoser}, ${sCols}, rn
        from (select n, ${pks}, ${firstPk('s')}, row_number() over w as rn
                from ${rows}
               where not ${hasLive}
              window w as (partition by n order by ${newestFirst})) x`,
      'plan',
    );
    // Each group's deleted rows are merged into its newest one, which is then un-deleted; a group the
    // server refuses (CHECK, exclusion, a unique key of live rows, raising trigger …) is skipped alone.
    const part = async (m: WorkTable, which: Sql) => {
      const t = ctx.nextTemp();
      await run(ctx, sql`create temp table ${t} on commit drop as select * from ${m} where ${which}`, 'plan');
      return t;
    };
    const refused = await groupwise(ctx, map, async (m) => {
      ctx.counts.rowsDeleted += await mergeRows(ctx, table, await part(m, sql`rn > 1`));
      ctx.counts.rowsUpdated += await updateRows(ctx, table, await part(m, sql`rn = 1`), [
        { column: marker.column, value: aliveValue(marker) },
      ]);
    });
    const held = await heldLosers(
      ctx,
      table,
      await part(map, sql`rn > 1`),
      refused.map((r) => r.n),
    );
    const reason = 'revive skips keys that a live row already holds (use purge-deleted for those)';
    const skipped = await recordSkipped(ctx, sql`select n from ${rows} where deleted and ${hasLive}`, reason);
    return {
      groups,
      skipped: skipped + held.skipped + refused.length,
      refused,
      reason:
        [refusedReason(refused, 'revive'), held.reason, skipped ? reason : undefined].filter(Boolean).join('; ') ||
        undefined,
    };
  },
};
