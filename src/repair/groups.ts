import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../db.js';
import { keyAliases } from '../sql/build.js';

/** The session-scoped temp table of group keys a repair walks through in batches: (n, k0, k1 …). */
export const GROUPS = 'rd_groups';

/**
 * (Re)create rd_groups from a query that yields the key columns k0.. of each group, numbered in
 * key order. Batches then take n in (from, to]: a stable, resumable walk that holds no rows in Node.
 */
export async function createGroups(session: Db, keyCount: number, keys: RawBuilder<unknown>): Promise<number> {
  const names = keyAliases(keyCount).map((_, i) => sql.id(`k${i}`));
  await sql`drop table if exists ${sql.id(GROUPS)}`.execute(session);
  await sql`create temp table ${sql.id(GROUPS)} as
    select row_number() over (order by ${sql.join(names)}) as n, ${sql.join(names)} from (${keys}) g`.execute(session);
  const res = await sql<{ n: string }>`select count(*) as n from ${sql.id(GROUPS)}`.execute(session);
  return Number(res.rows[0]?.n ?? 0);
}

/** `g.n` within the batch. */
export function inBatch(from: number, to: number): RawBuilder<unknown> {
  return sql`g.n > ${from} and g.n <= ${to}`;
}
