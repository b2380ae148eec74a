import type { TestDb } from './db.js';
import { until } from './poll.js';

/**
 * Tables of `schema` that anything read since the last pg_stat_reset(), once rowdoctor's sessions are
 * gone: what the server counted (pg_stat_all_tables), not what rowdoctor meant to read.
 */
export async function tablesRead(db: TestDb, schema: string): Promise<string[]> {
  await until('rowdoctor’s sessions have ended (their statistics are flushed)', async () => {
    const [r] = await db.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'rowdoctor'",
    );
    return r!.n === 0;
  });
  // PostgreSQL 14 and older send a session's counts to a statistics collector, which readers see up to
  // half a second late (and one session's before another's): read until two reads 0.6 s apart agree.
  let last: string | null = null;
  const read = await until(
    'the statistics collector has caught up',
    async () => {
      const rows = await db.query<{ relname: string }>(
        `select relname
           from pg_stat_all_tables
          where schemaname = $1 and coalesce(seq_scan, 0) + coalesce(idx_scan, 0) > 0
          order by 1`,
        [schema],
      );
      const now = JSON.stringify(rows.map((r) => r.relname));
      const settled = rows.length > 0 && now === last;
      last = now;
      return settled ? rows : null;
    },
    { everyMs: 600 },
  );
  return read.map((r) => r.relname);
}
