import { sql } from 'kysely';
import type { Db, Tx } from '../db.js';
import type { CheckId, Rule, Severity, Source } from '../rules/types.js';
import type { Sql } from '../sql/build.js';
import type { Diagnosis } from '../diagnosis/types.js';

/** One sample group: its key value and the ids of the rows involved. */
export interface Sample {
  key: unknown[];
  ids: unknown[];
  /** scan --show-rows: every row of the group, values as PostgreSQL prints them. */
  rows?: Record<string, string | null>[];
  /** scan --show-rows, duplicate-rows: the columns where a copy differs from the group's first row. */
  differingColumns?: string[];
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
  /**
   * When, whether still, how the copies differ (contract: Diagnosis): absent unless the scan
   * diagnoses; null when the table has no creation time (`diagnosisHint` says which would do).
   */
  diagnosis?: Diagnosis | null;
  diagnosisHint?: string;
  /** The diagnosis CTEs' answer, as detect() read it (src/diagnosis completes it). */
  diagnosisFigures?: unknown;
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
  /** Diagnosis CTEs to add to the detect statement (src/diagnosis): computed in the finding's own pass. */
  diagnosis?: DiagnosisSql | null;
}

/**
 * CTEs that read the detect statement's `g` (its damaged key values, columns keyAliases()), and a
 * json expression over them, selected as `diagnosis` into Finding.diagnosisFigures.
 */
export interface DiagnosisSql {
  ctes: Sql;
  value: Sql;
  /**
   * More aggregates for `g`'s GROUP BY, over `id` (the row id) alone, as `g` names them: a pass
   * shared by several rules (duplicate-chain.ts) computes each name once for all of them.
   */
  aggregates?: { name: string; value: Sql }[];
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

/** The diagnosis CTEs, to follow a detect statement's last CTE (nothing when not diagnosing). */
export function diagnosisCtes(options: DetectOptions): Sql {
  return options.diagnosis ? sql`,\n${options.diagnosis.ctes}` : sql``;
}

/** The diagnosis value, selected `as diagnosis` (null when not diagnosing). */
export function diagnosisValue(options: DetectOptions): Sql {
  return options.diagnosis?.value ?? sql`null::json`;
}

/** The selected diagnosis onto the finding, when one was asked for. */
export function withFigures(options: DetectOptions, figures: unknown): Pick<Finding, 'diagnosisFigures'> {
  return options.diagnosis ? { diagnosisFigures: figures } : {};
}
