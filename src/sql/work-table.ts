import { sql, type RawBuilder } from 'kysely';

/**
 * A temporary work table, always named with its schema. Unqualified, a name resolves through the
 * role's search_path, and a hardened path (`public, pg_temp`, as the PostgreSQL docs recommend)
 * puts a user's table of the same name first: `drop table if exists rd_groups` would drop theirs.
 */
export type WorkTable = RawBuilder<unknown>;

export function workTable(name: string): WorkTable {
  return sql.id('pg_temp', name);
}
