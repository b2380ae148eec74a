import { sql } from 'kysely';
import { childScope, parentEquals } from '../checks/orphaned-rows.js';
import type { DiagnosisSql } from '../checks/types.js';
import type { OrphanRule } from '../rules/types.js';
import { and, col, equals, isDeleted, keyAliases, partEquality, tableRef } from '../sql/build.js';
import { timeKind, type CreationColumn } from './created-at.js';
import { timeFigures } from './figures.js';
import { instant, render } from './time.js';

/**
 * The orphaned-rows diagnosis, as CTEs on detect()'s statement: they read its `g` (the dangling
 * key values) and reach the orphan rows by key — every in-scope row holding a dangling key is an
 * orphan. parentDeleted spans the marker times of the soft-deleted parents holding those keys.
 */
export function orphanDiagnosis(rule: OrphanRule, created: CreationColumn, recentMs: number): DiagnosisSql {
  const names = keyAliases(rule.columns.length);
  const matchFull = rule.comparison?.matchFull ?? false;
  const holdsKey = and(
    rule.columns.map((c, i) =>
      equals(col('c', c), sql.id('g', names[i]!), partEquality(rule.table, { kind: 'column', column: c }), matchFull),
    ),
  );
  const ctes = sql`
    dx_copies as (
      select ${instant(col('c', created.column), created.kind)} as t
        from g
        join ${tableRef(rule.table)} c on ${holdsKey}
       where ${and(childScope(rule, 'c'))}
    )`;
  const value = sql`(
    select json_build_object(
             'time', ${timeFigures(sql`dx_copies`, created.kind, recentMs)},
             'parentDeleted', ${parentDeleted(rule, names)}))`;
  return { ctes, value };
}

/** { first, last } of the soft-deleted parents' marker times, or null (none, or not a time marker). */
function parentDeleted(rule: OrphanRule, names: string[]) {
  const marker = rule.parent.softDelete;
  const column = marker && rule.parent.columns.find((c) => c.name === marker.column);
  const kind = column && timeKind(column);
  if (!marker || !kind) return sql`null::json`;
  const deletedAt = instant(col('p', marker.column), kind);
  const holdsKey = and(rule.parentColumns.map((pc, i) => parentEquals(rule, i, col('p', pc), sql.id('g', names[i]!))));
  const span = sql`json_build_object('first', ${render(sql`min(at)`, kind)}, 'last', ${render(sql`max(at)`, kind)})`;
  return sql`(
    select case when min(at) is not null then ${span} end
      from (select ${deletedAt} as at
              from g
              join ${tableRef(rule.parent)} p on ${holdsKey}
             where ${isDeleted(marker, 'p')}) d)`;
}
