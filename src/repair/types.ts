import type { Db } from '../db.js';
import type { Finding } from '../checks/types.js';
import type { Rule } from '../rules/types.js';
import type { BatchContext } from './context.js';

/** One sample group of a plan: who survives, who goes. */
export interface PlanSample {
  key: unknown[];
  survivor: unknown;
  losers: unknown[];
}

export interface BatchResult {
  /** Groups this batch found still damaged (and fixed, or would fix). */
  groups: number;
  /** Groups it had to leave (e.g. rows still referenced). */
  skipped: number;
  /** Why, when anything was skipped. */
  reason?: string;
  /** Groups the server refused to merge (a constraint, a trigger), each with its reason. */
  refused?: { n: number; reason: string }[];
  samples?: PlanSample[];
}

/** How a check repairs a rule: enumerate its groups once, then fix them batch by batch. */
export interface Repairer<R extends Rule> {
  /** Create the rd_groups temp table for this rule on the session; returns the number of groups. */
  groups(session: Db, rule: R): Promise<number>;
  /**
   * Right after groups(): the rule's finding, exactly as its check's detect() reports it, from what
   * groups() listed — so a repair need not scan the table once more to report what it found.
   */
  finding?(session: Db, rule: R, sample: number): Promise<Finding | null>;
  /** Lock and re-check the groups n in (from, to], then fix them (or, in a dry run, count). */
  batch(ctx: BatchContext, rule: R, from: number, to: number, sample: number): Promise<BatchResult>;
}
