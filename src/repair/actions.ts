import type { Finding } from '../checks/types.js';
import type { Db } from '../db.js';
import type { Progress } from '../report/progress.js';
import { describeRule, type Rule } from '../rules/types.js';
import type { Counts, PlanHooks, SkippedGroup } from './context.js';
import type { PlanSample } from './types.js';

export interface RepairOptions {
  apply: boolean;
  backup: boolean;
  batchSize: number;
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  infer: boolean;
  sample: number;
  progress: Progress;
  /** Set by Ctrl-C: the current batch finishes (or rolls back), no new batch starts. */
  interrupted: () => boolean;
  retries?: number;
  /** Target time of one batch transaction: the batch size adapts between batches (0 or absent: fixed). */
  maxTransactionMs?: number;
  /** Pause between batches while a streaming replica's replay lag exceeds this (0: never). */
  maxReplicaLagMs?: number;
  /** Rules whose finding is taken from their enumeration (their repairer must offer finding()). */
  findingsFor?: ReadonlySet<Rule>;
  /** Where a run whose session is lost is recorded as interrupted (the pool: a new connection). */
  reconnect?: Db;
  /** A reviewed plan to record (--plan-out) or to apply (--plan): src/plan. */
  plan?: PlanHooks;
}

/** One rule's outcome: the contract's `actions` entry plus what the report shows. */
export interface RuleAction extends Counts {
  rule: Rule;
  groups: number;
  skipped: number;
  /** Why groups were skipped (lock timeouts, rows still referenced …). */
  notes: string[];
  samples: PlanSample[];
  /** Up to --sample of the skipped groups, each with its key, ids and reason (contract §JSON). */
  skippedGroups: SkippedGroup[];
  /** What the rule's enumeration found, before this rule's batches (only for options.findingsFor). */
  finding?: Finding | null;
}

export interface RepairResult {
  runId: string;
  applied: boolean;
  actions: RuleAction[];
  interrupted: boolean;
  statements: string[];
  /** A dry run only: how many rows it copied to plan on (all tables together). */
  plannedRows?: number;
}

/** An action's counts, as the contract's `actions` entries and the runs table spell them. */
export function actionCounts(a: RuleAction) {
  return {
    groups: a.groups,
    rowsDeleted: a.rowsDeleted,
    rowsUpdated: a.rowsUpdated,
    childRowsRepointed: a.childRowsRepointed,
    childRowsMerged: a.childRowsMerged,
    redirected: a.redirected,
    skipped: a.skipped,
  };
}

/** A run's counts as rowdoctor_backup.runs keeps them: one entry per rule. */
export function runCounts(actions: RuleAction[]) {
  return actions.map((a) => ({ rule: describeRule(a.rule), ...actionCounts(a) }));
}
