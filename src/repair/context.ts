import { sql, type RawBuilder } from 'kysely';
import type { Catalog, Table } from '../catalog/types.js';
import type { Tx } from '../db.js';
import type { Rule } from '../rules/types.js';
import { col, type Sql } from '../sql/build.js';
import { unshadowed } from '../sql/shadow.js';
import type { WorkTable } from '../sql/work-table.js';

/** A group a repair left as it was, and why (contract §JSON `skippedGroups`). */
export interface SkippedGroup {
  /** The group's key values, as samples spell them. */
  key: unknown[];
  /** Every row of the group, by primary key, as listed when the groups were enumerated. */
  ids: unknown[];
  reason: string;
}

/** What one rule's repair changed (or, in a dry run, would change). Contract §JSON `actions`. */
export interface Counts {
  /** Rows of the rule's own table deleted. */
  rowsDeleted: number;
  /** Rows of the rule's own table updated (soft-delete, set-null, revive, fill). */
  rowsUpdated: number;
  /** Child rows (at any depth) updated to point at a survivor. */
  childRowsRepointed: number;
  /** Child rows (at any depth) merged into a sibling they would collide with, and so deleted. */
  childRowsMerged: number;
  /** Orphans whose key is a merged-away row, re-pointed to its survivor (the merge map). */
  redirected: number;
}

export function zeroCounts(): Counts {
  return { rowsDeleted: 0, rowsUpdated: 0, childRowsRepointed: 0, childRowsMerged: 0, redirected: 0 };
}

export function addCounts(a: Counts, b: Counts): Counts {
  return {
    rowsDeleted: a.rowsDeleted + b.rowsDeleted,
    rowsUpdated: a.rowsUpdated + b.rowsUpdated,
    childRowsRepointed: a.childRowsRepointed + b.childRowsRepointed,
    childRowsMerged: a.childRowsMerged + b.childRowsMerged,
    redirected: a.redirected + b.redirected,
  };
}

/** Why a planned group is left as it is at apply time (contract §"Reviewed plans"). */
export const CHANGED_SINCE_THE_PLAN = 'changed since the plan';

/**
 * How a repair takes part in a reviewed plan (src/plan): `repair --plan-out` records each batch's
 * groups (`planned`); `repair --plan` restricts each rule's listing to the plan's groups
 * (`restrict`) and, under each batch's row locks, leaves out those that changed (`checkLocked`).
 */
export interface PlanHooks {
  /**
   * After the rule's groups were listed into rd_groups/rd_members: keep only the plan's. `vanished`:
   * the plan's groups no longer listed at all (a row gone or re-keyed, so no longer duplicates).
   */
  restrict?(tx: Tx, rule: Rule): Promise<{ total: number; unplanned: number; vanished: SkippedGroup[] }>;
  /** Under the batch's locks (`rows`: n, p0…): drop the groups changed since the plan; returns how many. */
  checkLocked?(ctx: BatchContext, rule: Rule, rows: WorkTable): Promise<number>;
  /** After the batch ranked its groups into `map` (n, l0…, s0…): record them. */
  planned?(ctx: BatchContext, rule: Rule, rows: WorkTable, map: WorkTable): Promise<void>;
  /** The md5 of the plan file being applied: the run records it. */
  md5?: string;
}

/** Everything a batch needs: the transaction, the mode, and where to record statements and counts. */
export interface BatchContext {
  tx: Tx;
  catalog: Catalog;
  /** Declared rules: their orphaned-rows references are followed by merges. */
  declared: Rule[];
  infer: boolean;
  runId: string;
  /** false: a dry run — only SELECTs and temp tables, never a write to a user table. */
  apply: boolean;
  backup: boolean;
  counts: Counts;
  /**
   * Groups this batch skipped, with their reason (recordSkipped in groups.ts adds to it), up to
   * `skipSample` entries; the batch's `skipped` count stays the exact number.
   */
  skippedGroups: SkippedGroup[];
  skipSample: number;
  /** Groups set aside because another transaction holds some of their rows (lockBatchRows). */
  setAside: number[];
  /** Distinct statement texts, in first-run order, for --sql. */
  statements: Map<string, true>;
  nextTemp(): WorkTable;
  /** A reviewed plan this batch records (--plan-out) or applies (--plan): src/plan. */
  plan?: PlanHooks;
}

/**
 * The longest single statement of this process's repair (what bench reports against its 0.5 s
 * target), and its longest batch transaction with --apply and how many batches it ran (bench:live).
 */
export const statementStats = { longestMs: 0, longestSql: '', longestTransactionMs: 0, batches: 0 };

/**
 * Run a statement. `plan` statements (locking, ranking into temp tables) and `write` statements are
 * what --sql shows. A dry run runs inside a shadow scope (sql/shadow.ts): its writes go to the
 * copies of the tables in pg_temp — a write that names anything else is refused here — so its
 * counts are the server's. `backup` statements (into rowdoctor_backup) only run with --apply.
 */
export async function run<R = Record<string, unknown>>(
  ctx: BatchContext,
  q: RawBuilder<unknown>,
  kind: 'read' | 'plan' | 'write' | 'backup',
  /** What --sql shows instead, where a dry run leaves out parts of it (the backups --apply writes). */
  shown?: RawBuilder<unknown>,
): Promise<{ rows: R[]; affected: number }> {
  const compiled = q.compile(ctx.tx);
  const text = shown ? shown.compile(ctx.tx).sql : compiled.sql;
  if (kind !== 'read') ctx.statements.set(unshadowed(text).replace(/\s+/g, ' ').trim(), true);
  if (kind === 'backup' && !ctx.apply) return { rows: [], affected: 0 };
  if (kind === 'write' && !ctx.apply) onlyCopies(compiled.sql);
  const started = performance.now();
  const res = await ctx.tx.executeQuery<R>(compiled);
  const ms = performance.now() - started;
  // Temp tables get statistics at once, as a careful hand-written plan does: without them the
  // planner may pick a sequential scan of the big table for a join with a few thousand keys.
  const created = /^create temp table (?:if not exists )?((?:"(?:[^"]|"")+"\.)?"(?:[^"]|"")+")/.exec(compiled.sql);
  if (created) await ctx.tx.executeQuery(sql`analyze ${sql.raw(created[1]!)}`.compile(ctx.tx));
  if (ms > statementStats.longestMs)
    Object.assign(statementStats, { longestMs: ms, longestSql: compiled.sql.replace(/\s+/g, ' ').slice(0, 160) });
  return { rows: res.rows, affected: Number(res.numAffectedRows ?? res.rows.length) };
}

/** A dry run's write names only tables in pg_temp (the copies), never a user table. */
function onlyCopies(text: string): void {
  for (const m of text.matchAll(/\b(?:update|delete\s+from|insert\s+into)\s+(?:only\s+)?("(?:[^"]|"")+")/gi)) {
    if (m[1] !== '"pg_temp"') throw new Error(`internal: a dry run would write a user table: ${text.slice(0, 200)}`);
  }
}

export async function count(ctx: BatchContext, q: RawBuilder<unknown>): Promise<number> {
  const { rows } = await run<{ n: string }>(ctx, sql`select count(*) as n from (${q}) q`, 'read');
  return Number(rows[0]?.n ?? 0);
}

/**
 * What tells a table's rows apart in a merge: its primary key, or — for a child without one, reached
 * by a merge — its ctid, valid within the one transaction that lists and then changes the rows; on
 * a partitioned table with its partition (tableoid), as ctids repeat across partitions.
 * (A rule's own table must have a primary key: commands/repair.ts refuses it otherwise.)
 */
export function pkOf(table: Table): string[] {
  return table.primaryKey ?? (table.partitioned ? ['tableoid', 'ctid'] : ['ctid']);
}

/** `alias.pk = other.prefixN` for each primary-key column. */
export function pkMatches(table: Table, alias: string, other: string, prefix: string): Sql {
  return sql.join(
    pkOf(table).map((c, i) => sql`${col(alias, c)} = ${col(other, `${prefix}${i}`)}`),
    sql` and `,
  );
}
