import { sql } from 'kysely';
import type { Tx } from '../db.js';

/**
 * The row-text settings a plan's fingerprints are taken under, whatever the session's: a plan
 * made in one TimeZone (or DateStyle, extra_float_digits …) and applied from a session in another
 * would otherwise see every timestamptz row as changed.
 */
const CANONICAL: Record<string, string> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO, MDY',
  IntervalStyle: 'postgres',
  extra_float_digits: '1',
  bytea_output: 'hex',
};

/**
 * Run `fn` with the canonical row-text settings, then put the transaction's own back: only the
 * fingerprints are taken under them, never the repair's statements (a key like created_at::date
 * depends on TimeZone).
 */
export async function underCanonicalRowText<T>(tx: Tx, fn: () => Promise<T>): Promise<T> {
  const names = Object.keys(CANONICAL);
  const values = names.map((n) => CANONICAL[n]!);
  // Each setting is read (in the CTE's row) before it is set: one round trip, not ten.
  const { rows } = await sql<{ name: string; value: string }>`
    with was as materialized (
      select name, canonical, current_setting(name) as value
        from unnest(${names}::text[], ${values}::text[]) as s(name, canonical)
    )
    select name, value, set_config(name, canonical, true) as now
      from was`.execute(tx);
  // On an error the transaction rolls back, and its local settings with it.
  const out = await fn();
  await sql`
    select set_config(name, value, true)
      from unnest(${rows.map((r) => r.name)}::text[], ${rows.map((r) => r.value)}::text[]) as s(name, value)`.execute(
    tx,
  );
  return out;
}
