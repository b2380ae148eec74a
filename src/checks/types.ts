import type { Db, Tx } from '../db.js';
import type { CheckId, Rule, Severity, Source } from '../rules/types.js';

/** One sample group: its key value and the ids of the rows involved. */
export interface Sample {
  key: unknown[];
  ids: unknown[];
}

/** What a check found for one rule. Counts are exact; samples are capped by --sample. */
export interface Finding {
  check: CheckId;
  table: string;
  key: string[];
  where: string | null;
  source: Source;
  severity: Severity;
  groups: number;
  rows: number;
  samples: Sample[];
  /** orphaned-rows only */
  columns?: string[];
  references?: string;
  missingParent?: number;
  deletedParent?: number;
  inferred?: boolean;
  /** orphaned-rows of a polymorphic or generic reference: which rows of which type. */
  polymorphic?: { typeColumn: string; idColumn: string; type: string };
  /** Set when the rule could not be checked at all (contract: an error finding; the scan exits 2). */
  error?: RuleError;
  /** Why a discovered rule exists (not in the JSON contract; shown in text output). */
  origin: string | null;
  rule: Rule;
}

/** Why a rule could not run, and what the user can do about it. */
export interface RuleError {
  message: string;
  hint: string | null;
}

export interface DetectOptions {
  sample: number;
}

/** A kind of damage: how to find it (read-only, one set-based query per rule). */
export interface Check<R extends Rule> {
  id: CheckId;
  /** One line for progress and headings. */
  describe(rule: R): string;
  /** Returns null when the rule finds nothing. */
  detect(db: Db | Tx, rule: R, options: DetectOptions): Promise<Finding | null>;
}

export function baseFinding(rule: Rule, key: string[]): Omit<Finding, 'groups' | 'rows' | 'samples'> {
  return {
    check: rule.check,
    table: rule.table.id,
    key,
    where: rule.where?.text ?? null,
    source: rule.source,
    severity: rule.severity,
    origin: rule.origin,
    rule,
  };
}

/** pg returns bigint as text: counts are exact integers, well inside Number's safe range. */
export function count(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}
