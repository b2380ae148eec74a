import { sql } from 'kysely';
import { duplicateScope, keyIndexed } from '../checks/duplicate-rows.js';
import type { DiagnosisSql } from '../checks/types.js';
import type { DuplicateRule } from '../rules/types.js';
import { and, col, equalityOperator, groupKeyExpr, keyAliases, keysEqual, tableRef, type Sql } from '../sql/build.js';
import type { CreationColumn } from './created-at.js';
import { comparedColumns, differs } from './differs.js';
import { timeFigures } from './figures.js';
import { instant, seconds } from './time.js';

/** Primary-key types whose min() and max() are cheap, exact and ordered like the key (a by-id lookup pair). */
const MIN_MAX_TYPES = ['int2', 'int4', 'int8', 'numeric', 'text', 'varchar', 'date', 'timestamp', 'timestamptz'];

/**
 * The duplicate-rows diagnosis, as CTEs on detect()'s statement: they read its `g` (the key values
 * held by more than one row) and reach the groups' rows, once. In each group the rows are ranked by
 * creation time (undated last), then by primary key: the first is the original, every later row a
 * copy — the damaged rows every figure counts.
 *
 * Reaching the rows costs a second pass over the table unless done by index. Where an index leads
 * with the key, each group's rows are looked up by key. Otherwise the aggregate also keeps each
 * group's lowest and highest primary key (cheap, no array per group): a pair group — nearly every
 * group of a double submit — is then read by two primary-key lookups, and only the groups of three or
 * more rows are joined back by key (no pass at all when there are none).
 */
export function duplicateDiagnosis(rule: DuplicateRule, created: CreationColumn, recentMs: number): DiagnosisSql {
  const table = rule.table;
  const names = keyAliases(rule.key.length);
  const pk = table.primaryKey;
  const pkColumn = pk?.length === 1 ? table.columns.find((c) => c.name === pk[0]) : undefined;
  const byId = !keyIndexed(rule) && pkColumn && MIN_MAX_TYPES.includes(pkColumn.baseType) ? pkColumn : null;
  const t = instant(col('r', created.column), created.kind);
  const compared = comparedColumns(table, created.column);
  const order = pk ? pk.map((c) => col('r', c)) : [col('r', 'tableoid'), col('r', 'ctid')];
  // A member row: its group, creation instant, ordering columns (o…) and compared columns (c…).
  const member = (gid: Sql) =>
    sql.join([
      sql`${gid} as gid`,
      sql`${t} as t`,
      ...order.map((o, i) => sql`${o} as ${sql.id(`o${i}`)}`),
      ...compared.map((c, i) => sql`${col('r', c.name)} as ${sql.id(`c${i}`)}`),
    ]);
  const onKey = keysEqual(
    table,
    rule.key,
    rule.key.map((k) => groupKeyExpr(table, k, 'r')),
    names.map((n) => sql.id('dx_g', n)),
    rule.nullsNotDistinct,
  );
  const inScope = and(duplicateScope(rule, 'r'));
  const byKey = keyIndexed(rule)
    ? // one index lookup per group (OFFSET 0 keeps it a lookup whatever the planner thinks g holds)
      sql`select m.*
            from dx_g
           cross join lateral (select ${member(sql`dx_g.__rd_gid`)}
                                 from ${tableRef(table)} r
                                where ${onKey} and ${inScope}
                               offset 0) m`
    : sql`select ${member(sql`dx_g.__rd_gid`)}
            from dx_g
            join ${tableRef(table)} r on ${onKey} and ${inScope}
           where ${byId ? sql`dx_g.__rd_n > 2` : sql`true`}`;
  const members = byId
    ? sql`select m.*
            from (select __rd_gid as gid, __rd_lo as id from dx_g where __rd_n = 2
                  union all
                  select __rd_gid, __rd_hi from dx_g where __rd_n = 2) x
           cross join lateral (select ${member(sql`x.gid`)}
                                 from ${tableRef(table)} r
                                where ${col('r', byId.name)} ${equalityOperator(byId.equality)} x.id
                               offset 0) m
           union all
          ${byKey}`
    : byKey;
  const orderCols = sql.join(order.map((_, i) => sql.id(`o${i}`)));
  const values = compared.map((_, i) => sql`, ${sql.id(`c${i}`)}`);
  const firsts = compared.map((_, i) => sql`, first_value(${sql.id(`c${i}`)}) over w as ${sql.id(`f${i}`)}`);
  const differences = compared.map(
    (c, i) => sql`, bool_or(${differs(c, sql.id(`c${i}`), sql.id(`f${i}`))}) as ${sql.id(`d${i}`)}`,
  );
  const perColumn = compared.map(
    (c, i) => sql`(${c.name}::text, ${sql.lit(i)}, (select count(*) from dx_groups where ${sql.id(`d${i}`)}))`,
  );
  const differing = perColumn.length
    ? sql`(
        select coalesce(json_agg(json_build_object('column', name, 'groups', n) order by n desc, ord), '[]'::json)
          from (values ${sql.join(perColumn)}) v(name, ord, n)
         where n > 0)`
    : sql`'[]'::json`;
  const pair = byId ? sql`, __rd_lo, __rd_hi` : sql``;
  const ctes = sql`
    dx_g as (
      select row_number() over () as __rd_gid, n as __rd_n, ${sql.join(names.map((n) => sql.id(n)))}${pair}
        from g
    ),
    dx_members as (${members}),
    dx_rows as (
      select gid, t, row_number() over w as rn, first_value(t) over w as t0${sql.join([...values, ...firsts], sql``)}
        from dx_members
      window w as (partition by gid order by t nulls last, ${orderCols})
    ),
    dx_copies as (
      select t, ${seconds(sql`t`, sql`t0`)} as gap
        from dx_rows
       where rn > 1
    ),
    dx_groups as (
      select gid${sql.join(differences, sql``)}
        from dx_rows
       group by gid
    )`;
  // Every figure as one json value: the time figures, the gaps between copies, the differing columns.
  const value = sql`(
    select json_build_object(
             'time', ${timeFigures(sql`dx_copies`, created.kind, recentMs)},
             'copyGap', (select case when count(gap) > 0 then json_build_object(
                                  'p50', percentile_cont(0.5) within group (order by gap),
                                  'p90', percentile_cont(0.9) within group (order by gap),
                                  'max', max(gap)) end
                           from dx_copies),
             'differingColumns', ${differing}))`;
  // The aggregate's extra columns: each group's lowest and highest primary key.
  const aggregates = byId
    ? [
        { name: '__rd_lo', value: sql`min(id)` },
        { name: '__rd_hi', value: sql`max(id)` },
      ]
    : undefined;
  return { ctes, value, ...(aggregates ? { aggregates } : {}) };
}
