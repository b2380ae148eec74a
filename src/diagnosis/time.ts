import { sql } from 'kysely';
import type { Sql } from '../sql/build.js';
import type { TimeKind } from './created-at.js';

/**
 * Creation times as instants, whatever the session's TimeZone: a timestamptz is one already; a
 * timestamp (no zone) is read as UTC; a date as midnight UTC of that day. ±infinity counts as no
 * creation time (NULL), like a NULL does. Every figure is computed on these instants.
 */
export function instant(value: Sql, kind: TimeKind): Sql {
  const utc =
    kind === 'timestamptz'
      ? value
      : kind === 'timestamp'
        ? sql`(${value} at time zone 'UTC')`
        : sql`(${value}::timestamp at time zone 'UTC')`;
  return sql`(case when pg_catalog.isfinite(${value}) then ${utc} end)`;
}

/** An instant rendered for JSON in the column's own terms (UTC): see docs/checks/duplicate-rows.md. */
export function render(t: Sql, kind: TimeKind): Sql {
  if (kind === 'date') return sql`pg_catalog.to_char(${t} at time zone 'UTC', 'YYYY-MM-DD')`;
  // Seconds always, the fraction only as far as it goes: 09:14:00, 09:14:00.3, 09:14:00.000123.
  const full = sql`pg_catalog.to_char(${t} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')`;
  const text = sql`pg_catalog.regexp_replace(${full}, '\\.?0+$', '')`;
  return kind === 'timestamptz' ? sql`(${text} || 'Z')` : text;
}

/** The UTC day an instant falls on. */
export function utcDay(t: Sql): Sql {
  return sql`(${t} at time zone 'UTC')::date`;
}

/** The first instant of the 30-day window: midnight UTC, 29 days before today (UTC). */
export const windowStart = sql`(((pg_catalog.now() at time zone 'UTC')::date - 29)::timestamp at time zone 'UTC')`;

/** The first instant of the --recent window. */
export function recentStart(ms: number): Sql {
  return sql`(pg_catalog.now() - ${sql.lit(ms)} * interval '1 millisecond')`;
}

/** Seconds from `t0` to `t`, as a double (percentile_cont's type). */
export function seconds(t: Sql, t0: Sql): Sql {
  return sql`pg_catalog.date_part('epoch', ${t} - ${t0})`;
}
