import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db.js';
import { RowdoctorError } from '../errors.js';

export function newRunId(now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${t}-${randomBytes(2).toString('hex')}`;
}

/** Both repairs and undos take it: two of them on one database never overlap. */
export const REPAIR_LOCK_KEY = sql`hashtextextended('rowdoctor.repair', 0)`;

export async function takeRepairLock(session: Db): Promise<void> {
  const got = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${REPAIR_LOCK_KEY}) as ok`.execute(session);
  if (got.rows[0]?.ok) return;
  // Who holds the lock: an advisory lock on a bigint key shows its low 32 bits as objid.
  const holder = await sql<{ pid: number; app: string }>`
    select l.pid, a.application_name as app
      from pg_locks l
      join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.objid = (${REPAIR_LOCK_KEY} & x'ffffffff'::bigint)::oid
     limit 1`.execute(session);
  const who = holder.rows[0]
    ? ` (backend pid ${holder.rows[0].pid}, ${holder.rows[0].app || 'no application_name'})`
    : '';
  throw new RowdoctorError(`Another rowdoctor repair or undo is running on this database${who}.`, {
    hint: 'Wait for it to finish; two repairs on one database never run at once.',
  });
}
