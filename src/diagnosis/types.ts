/**
 * A finding's diagnosis (contract: "Diagnosis: since when, still happening, how the copies
 * differ"): when the damaged rows were created, whether they still are, and how duplicate copies
 * differ. Times are strings the server rendered (see time.ts); counts are exact.
 */
export interface Diagnosis {
  /** The creation-time column the figures come from. */
  createdAt: string;
  /** Creation time of the earliest / latest damaged row (null when none has one). */
  first: string | null;
  last: string | null;
  /** Damaged rows per UTC day, for the days of the last 30 (today included) that have any. */
  perDay: { day: string; count: number }[];
  /** Damaged rows created before those 30 days. */
  before: number;
  /** Damaged rows created within the --recent window (default 24 h), and whether there are any. */
  recent: number;
  stillHappening: boolean;
  /** Damaged rows without a creation time (NULL, or ±infinity): in no other count. */
  undated: number;
  /** duplicate-rows: seconds between a group's first row and each later copy (dated copies only). */
  copyGap?: { p50: number; p90: number; max: number } | null;
  signature?: Signature | null;
  /** duplicate-rows: columns whose values differ between a group's copies, and in how many groups. */
  differingColumns?: { column: string; groups: number }[];
  /** orphaned-rows: the span of the soft-deleted parents' marker times (null: none, or a boolean marker). */
  parentDeleted?: { first: string; last: string } | null;
}

export type Signature = 'double-submit' | 'retry' | 're-creation';

/** What a scan is asked to diagnose (scan flags). */
export interface DiagnoseOptions {
  /** --recent, in milliseconds. */
  recentMs: number;
  /** --show-rows: how many sample groups get their rows. */
  showRows: number;
}

/** One row of a sample group (--show-rows): each column's value as PostgreSQL prints it. */
export type SampleRow = Record<string, string | null>;
