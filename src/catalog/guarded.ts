import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { isPgError } from '../errors.js';

/**
 * Run one evidence query in a savepoint of the caller's transaction: when the server cannot
 * answer it — a statement timeout on a huge table, a comparison the types refuse — the answer is
 * `fallback(error)` and the transaction goes on, so a guess that cannot be weighed costs one
 * guess, not the command. Connection loss, a recovery conflict and the like still end it.
 */
export async function guarded<T>(db: Db | Tx, query: () => Promise<T>, fallback: (e: Error) => T): Promise<T> {
  await sql`savepoint rd_evidence`.execute(db);
  try {
    const result = await query();
    await sql`release savepoint rd_evidence`.execute(db);
    return result;
  } catch (e) {
    const answerable = isPgError(e) && (e.code === '57014' || ['22', '42', '53', '54'].includes(e.code!.slice(0, 2)));
    if (!answerable) throw e;
    await sql`rollback to savepoint rd_evidence`.execute(db);
    return fallback(e);
  }
}
