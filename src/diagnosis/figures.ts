import { sql } from 'kysely';
import type { Sql } from '../sql/build.js';
import type { TimeKind } from './created-at.js';
import { recentStart, render, utcDay, windowStart } from './time.js';

/**
 * The time figures over a CTE of damaged rows `from` with an instant column `t` (NULL: undated):
 * first, last, perDay, before, recent, undated. One aggregate, plus one per day for perDay.
 */
export function timeFigures(from: Sql, kind: TimeKind, recentMs: number): Sql {
  const day = sql`pg_catalog.to_char(day, 'YYYY-MM-DD')`;
  const perDay = sql`(
    select coalesce(json_agg(json_build_object('day', ${day}, 'count', n) order by day), '[]'::json)
      from (select ${utcDay(sql`t`)} as day, count(*) as n
              from ${from}
             where t >= ${windowStart}
             group by 1) d)`;
  return sql`(
    select json_build_object(
             'first', ${render(sql`min(t)`, kind)},
             'last', ${render(sql`max(t)`, kind)},
             'perDay', ${perDay},
             'before', count(*) filter (where t < ${windowStart}),
             'recent', count(*) filter (where t >= ${recentStart(recentMs)}),
             'undated', count(*) filter (where t is null))
      from ${from})`;
}
