import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../db.js';
import type { Table } from '../catalog/types.js';
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
  await sql`analyze ${sql.id(GROUPS)}`.execute(session);
  const res = await sql<{ n: string }>`select count(*) as n from ${sql.id(GROUPS)}`.execute(session);
  return Number(res.rows[0]?.n ?? 0);
}

/** The session-scoped temp table of each group's member rows, by primary key: (n, p0 …). */
export const MEMBERS = 'rd_members';

/**
 * List every group's member rows once (one pass over the table), so each batch then reaches its
 * rows by primary key instead of scanning the table for its keys.
 */
export async function createMembers(session: Db, table: Table, onKey: RawBuilder<unknown>, scope: RawBuilder<unknown>): Promise<void> {
  const pk = table.primaryKey ?? [];
  await sql`drop table if exists ${sql.id(MEMBERS)}`.execute(session);
  await sql`create temp table ${sql.id(MEMBERS)} as
    select g.n, ${sql.join(pk.map((c, i) => sql`t.${sql.id(c)} as ${sql.id(`p${i}`)}`))}
      from ${sql.id(table.schema, table.name)} t join ${sql.id(GROUPS)} g on ${onKey} where ${scope}`.execute(session);
  await sql`create index on ${sql.id(MEMBERS)} (n)`.execute(session);
  await sql`analyze ${sql.id(MEMBERS)}`.execute(session);
}

/** `g.n` within the batch. */
export function inBatch(from: number, to: number): RawBuilder<unknown> {
  return sql`g.n > ${from} and g.n <= ${to}`;
}
