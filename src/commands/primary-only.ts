import type { Db } from '../db.js';
import { RowdoctorError } from '../errors.js';
import { serverInRecovery } from '../catalog/recovery.js';

/**
 * Commands that write (repair, undo — their dry runs too, which build temporary work tables)
 * refuse a standby before anything else runs, with what to do instead of a read-only error
 * halfway through.
 */
export async function refuseOnStandby(db: Db, command: string, database: string): Promise<void> {
  if (!(await serverInRecovery(db))) return;
  throw new RowdoctorError(
    `${database} is a read replica (a hot standby: pg_is_in_recovery() is true), and ${command} writes — its dry ` +
      'run too, which builds temporary work tables — so it cannot run here. Run it against the primary; from ' +
      "there, --max-replica-lag pauses the repair between batches while the primary's streaming replicas fall " +
      'behind. scan, verify-constraints and init work on a replica.',
  );
}
