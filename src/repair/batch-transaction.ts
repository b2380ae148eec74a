import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import { BatchRetry, RETRYABLE_SQLSTATES, describePgError, isPgError } from '../errors.js';
import type { Progress } from '../report/progress.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The next batch size from how long the last batch's transaction took (as pt-online-schema-change
 * sizes its chunks): over the target, cut to what would have fitted it — at least halved, so a
 * batch that ran far past it (a 1,000-group batch at 128 s against 200 ms) is not followed by nine
 * more that each hold their locks too long; grown — at most doubled — while under it, never above
 * `max`. A failed batch (null) halves it.
 */
export function nextBatchSize(size: number, ms: number | null, target: number, max: number): number {
  if (ms === null) return Math.max(1, Math.floor(size / 2));
  if (ms > target) return Math.max(1, Math.min(Math.floor(size / 2), Math.floor((size * target) / ms)));
  const factor = Math.min(2, target / Math.max(ms, 1));
  return factor <= 1 ? size : Math.min(max, Math.max(size + 1, Math.floor(size * factor)));
}

/** How one batch transaction went: what it returned and how long it took, or why it gave up. */
export type Attempted<T> = { value: T; ms: number } | { error: string };

export interface BatchTransactionOptions {
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  progress: Progress;
  retries?: number;
}

/**
 * One batch, in its own transaction, with statement_timeout and a lock_timeout under half the
 * server's deadlock_timeout: in a lock cycle with the application, rowdoctor gives up before the
 * server picks a victim. A lock timeout, deadlock, serialization failure or BatchRetry rolls the
 * batch back and retries it (`what` names it in the one stderr line each retry gets); after its
 * retries it returns why. Any other error is thrown. Repair and undo both run their batches here.
 */
export async function batchTransaction<T>(
  session: Db,
  options: BatchTransactionOptions,
  what: string,
  body: (tx: Tx) => Promise<T>,
): Promise<Attempted<T>> {
  const attempts = (options.retries ?? 3) + 1;
  for (let attempt = 1; ; attempt++) {
    const began = performance.now();
    try {
      const value = await session.transaction().execute(async (tx) => {
        const halfDeadlockTimeout = sql`extract(epoch from current_setting('deadlock_timeout')::interval) * 500`;
        const lockTimeout = sql`least(${options.lockTimeoutMs}, greatest(1, ${halfDeadlockTimeout}))::int::text`;
        await sql`
          select set_config('lock_timeout', ${lockTimeout}, true),
                 set_config('statement_timeout', ${String(options.statementTimeoutMs)}, true)`.execute(tx);
        return body(tx);
      });
      return { value, ms: performance.now() - began };
    } catch (e) {
      const retryable =
        e instanceof BatchRetry
          ? { what: e.message, why: e.message }
          : isPgError(e) && RETRYABLE_SQLSTATES.has(e.code ?? '')
            ? { what: `${e.message} (${e.code})`, why: describePgError(e) }
            : null;
      if (!retryable) throw e;
      if (attempt >= attempts) return { error: `${retryable.why} after ${attempts} attempts` };
      options.progress.note(`${what}: ${retryable.what}; retry ${attempt} of ${attempts - 1}`);
      await sleep(100 * 2 ** attempt);
    }
  }
}

/** A batch's elapsed or remaining time as progress lines print it: `4.2s`, `3min 12s`. */
export function seconds(ms: number): string {
  return ms < 60_000
    ? `${(ms / 1000).toFixed(1)}s`
    : `${Math.floor(ms / 60_000)}min ${Math.round((ms % 60_000) / 1000)}s`;
}
