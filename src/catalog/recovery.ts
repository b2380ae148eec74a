import { sql } from 'kysely';
import type { Db } from '../db.js';
import { isPgError } from '../errors.js';

/**
 * Is the server a standby (in recovery: a streaming or log-shipping replica, or a primary still
 * replaying WAL after a crash)? It then refuses every write, temporary tables included.
 */
export async function serverInRecovery(db: Db): Promise<boolean> {
  // One function call, no table: works for any role on any server.
  const { rows } = await sql<{ recovery: boolean }>`
    select pg_catalog.pg_is_in_recovery() as recovery`.execute(db);
  return rows[0]?.recovery === true;
}

/**
 * A standby cancelled the statement (or ended the session) because replaying the primary's WAL
 * would remove row versions its snapshot still needs: SQLSTATE 40001 with this message, unlike a
 * serialization failure between transactions, which shares the SQLSTATE.
 */
export function isRecoveryConflict(e: unknown): boolean {
  const cause = e instanceof Error && !isPgError(e) ? e.cause : e;
  return isPgError(cause) && cause.code === '40001' && /conflict with recovery/i.test(cause.message);
}

/** What an operator can change so a standby stops cancelling long read-only queries. */
export const RECOVERY_CONFLICT_HINT =
  'The standby cancelled the query because replaying the primary’s changes (VACUUM removing old row versions) ' +
  'conflicted with its snapshot. On the standby, set hot_standby_feedback = on (the primary then keeps those rows ' +
  'until the scan ends) or raise max_standby_streaming_delay (replay waits that long for the query; -1 waits ' +
  'for ever), or run the scan when the primary is quieter.';
