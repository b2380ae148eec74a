import type { Warning } from '../catalog/row-security.js';
import type { RecordedReference } from '../repair/references.js';
import type { BatchTransactionOptions } from '../repair/batch-transaction.js';
import type { RowTextSettings } from '../journal/row-text.js';
import type { ConflictSample, UndoTarget } from './conflicts.js';
import type { Inexact } from './exact.js';

export interface UndoTable {
  table: string;
  /** Deleted rows to put back (their key is still free). */
  restore: number;
  /** Updated rows that go back to what they were before the run (they still hold what it left). */
  revert: number;
  /** Rows the application changed, deleted or re-used the key of since: left alone. */
  conflicts: number;
}

export interface UndoResult {
  runId: string;
  undoRunId: string;
  applied: boolean;
  tables: UndoTable[];
  conflictSamples: ConflictSample[];
  /** Tables undo cannot restore bit for bit as this role; --apply then refuses. */
  inexact: Inexact[];
  /** What undo restores exactly but cannot take back (side effects of AFTER triggers). */
  warnings: Warning[];
  refused: string | null;
  /** The run changed no row (everything skipped, or nothing to do): there is nothing to undo. */
  nothingToUndo: boolean;
  /**
   * The repair's batches: how many, how many an earlier, interrupted undo took back already, and
   * whether its backups (from a version that did not record batches) are undone in one transaction.
   */
  batches: { batches: number; undoneBefore: number; oneTransaction: boolean };
  /** Ctrl-C stopped it between batches: what it took back is recorded; running it again finishes. */
  interrupted: boolean;
}

export interface RunRow {
  run_id: string;
  command: string;
  status: string;
  undo_of: string | null;
  /** references: what the run re-pointed through (runs of earlier versions: none recorded). */
  options: { rowText?: RowTextSettings; references?: RecordedReference[] } | null;
}
export interface BackupInfo extends UndoTarget {
  /** The repair batches that backed up rows of its table (none for runs of versions that did not record them). */
  inBatches: Set<string>;
  restore: number;
  revert: number;
  lastDelete: number;
}

export interface UndoOptions extends BatchTransactionOptions {
  apply: boolean;
  sample: number;
  /** At most this many backed-up rows per transaction (a repair batch is never split). */
  batchSize: number;
  /** Target time of one transaction: the batch size adapts between batches (0 or absent: fixed). */
  maxTransactionMs?: number;
  /** Pause between batches while a streaming replica's replay lag exceeds this (0: never). */
  maxReplicaLagMs?: number;
  /** Set by Ctrl-C: the current batch finishes (or rolls back), no new batch starts. */
  interrupted?: () => boolean;
}

/** One batch transaction of the repair, as its backups record it. */
export interface RepairBatch {
  id: string;
  rows: number;
  last: number;
}
