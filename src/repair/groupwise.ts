import { sql } from 'kysely';
import { BatchSplit, GroupRefusal, isPgError, type PgErrorFields } from '../errors.js';
import { realName, realTableOf } from '../sql/shadow.js';
import type { WorkTable } from '../sql/work-table.js';
import { forgetListedTables } from './backup.js';
import { run, type BatchContext } from './context.js';

/** A group the server refused to merge: its number in rd_groups and why (constraint, SQLSTATE). */
export interface RefusedGroup {
  n: number;
  reason: string;
  /** Refused by rowdoctor (GroupRefusal), not by the server. */
  byRowdoctor?: boolean;
}

/**
 * SQLSTATEs that mean "the server will not take this group's change" rather than "the batch went
 * wrong": integrity constraints (unique, foreign key, CHECK, exclusion, NOT NULL, RESTRICT — class
 * 23) and errors raised by triggers (class P0: RAISE, ASSERT).
 */
export function refusesGroup(e: unknown): e is Error & PgErrorFields & { constraint?: string; table?: string } {
  return isPgError(e) && (e.code!.startsWith('23') || e.code!.startsWith('P0'));
}

/** "check constraint review_check on public.review (23514)", or the raised message for a trigger. */
export function refusalReason(e: Error & PgErrorFields & { constraint?: string; table?: string; schema?: string }) {
  // In a dry run the server names the copies (sql/shadow.ts): say which table and constraint they stand for
  // (for a partition's own index, that partition, as --apply's error names it).
  const copied = e.table && realName(e.table) !== e.table ? realName(e.table) : undefined;
  const table = realTableOf(e.constraint) ?? copied ?? (e.table && `${e.schema}.${e.table}`);
  const where = table ? ` on ${table}` : '';
  if (e.constraint) return `${kindOf(e.code!)} ${realName(e.constraint)}${where} (${e.code})`;
  return `${e.message}${where} (${e.code})`;
}

function kindOf(code: string): string {
  switch (code) {
    case '23505':
      return 'unique key';
    case '23503':
      return 'foreign key';
    case '23001':
      return 'restricting key';
    case '23514':
      return 'check constraint';
    case '23P01':
      return 'exclusion constraint';
    default:
      return 'constraint';
  }
}

async function exec(ctx: BatchContext, text: string): Promise<void> {
  await ctx.tx.executeQuery(sql.raw(text).compile(ctx.tx));
}

/**
 * Run `work` on the whole `map` (a temp table with the group number `n`) inside a savepoint. When
 * the server refuses it (a CHECK or exclusion constraint, a trigger that raises, a restricting
 * key …) and `map` holds one group, roll back to the savepoint and return that group with its
 * reason: the batch goes on without it. When `map` holds several, throw BatchSplit: the batch is
 * rolled back and its halves run as batches of their own (rule-batches.ts), each a short
 * transaction, rather than this one re-running every group while it holds the batch's row locks.
 * Counts of a refused attempt are taken back, so they stay exactly what the server did.
 */
export async function groupwise(
  ctx: BatchContext,
  map: WorkTable,
  work: (map: WorkTable) => Promise<void>,
): Promise<RefusedGroup[]> {
  const before = { ...ctx.counts };
  await exec(ctx, 'savepoint rd_group');
  try {
    await work(map);
    // Deferred constraints are checked now, inside the savepoint, not at commit for the whole batch.
    await exec(ctx, 'set constraints all immediate');
    await exec(ctx, 'release savepoint rd_group');
    return [];
  } catch (e) {
    if (!refusesGroup(e) && !(e instanceof GroupRefusal)) throw e;
    await exec(ctx, 'rollback to savepoint rd_group');
    forgetListedTables(ctx.tx);
    await exec(ctx, 'release savepoint rd_group');
    Object.assign(ctx.counts, before);
    const reason = e instanceof GroupRefusal ? e.message : refusalReason(e);
    const { rows } = await run<{ n: string }>(ctx, sql`select distinct n from ${map} order by n limit 2`, 'read');
    if (rows.length > 1) throw new BatchSplit(reason);
    const byRowdoctor = e instanceof GroupRefusal ? { byRowdoctor: true } : {};
    return rows.map(({ n }) => ({ n: Number(n), reason, ...byRowdoctor }));
  }
}

/** One note per distinct reason: "skipped, the server refused the merge: check constraint … (23514)". */
export function refusedReason(refused: RefusedGroup[], what = 'merge'): string | undefined {
  const server = [...new Set(refused.filter((r) => !r.byRowdoctor).map((r) => r.reason))];
  const own = [...new Set(refused.filter((r) => r.byRowdoctor).map((r) => r.reason))];
  const notes = [...(server.length ? [`skipped, the server refused the ${what}: ${server.join('; ')}`] : []), ...own];
  return notes.length ? notes.join('; ') : undefined;
}
