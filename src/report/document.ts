import type { Finding } from '../checks/types.js';
import type { Assumption } from '../catalog/types.js';
import type { Warning } from '../catalog/row-security.js';

/** The versioned JSON document every command prints with --format json (contract §JSON output). */
export interface Document {
  tool: 'rowdoctor';
  schemaVersion: 1;
  command: string;
  database: string;
  findings: FindingJson[];
  summary: { findings: number; rows: number; checks: number; [k: string]: number };
  [extra: string]: unknown;
}

export type FindingJson = Omit<Finding, 'rule' | 'origin'>;

/** A finding as the contract spells it: keys in contract order, orphan-only keys on orphans only. */
export function findingJson(f: Finding): FindingJson {
  if (f.error) {
    const { check, table, key, where, source, severity, error } = f;
    return { check, table, key, where, source, severity, error } as FindingJson;
  }
  const base = {
    check: f.check,
    table: f.table,
    key: f.key,
    where: f.where,
    source: f.source,
    severity: f.severity,
    groups: f.groups,
    rows: f.rows,
    samples: f.samples,
  };
  // Present (an object, or null without a creation time) when the scan diagnosed; absent otherwise.
  const diagnosis = f.diagnosis !== undefined ? { diagnosis: f.diagnosis } : {};
  if (f.check !== 'orphaned-rows') return { ...base, ...diagnosis };
  return {
    ...base,
    columns: f.columns,
    references: f.references,
    missingParent: f.missingParent,
    deletedParent: f.deletedParent,
    inferred: f.inferred,
    ...(f.polymorphic ? { polymorphic: f.polymorphic } : {}),
    ...diagnosis,
  };
}

/** An assumption as the contract spells it: `{ kind, table, column, evidence }`. */
export function assumptionJson(a: Assumption): Pick<Assumption, 'kind' | 'table' | 'column' | 'evidence'> {
  return { kind: a.kind, table: a.table, column: a.column, evidence: a.evidence };
}

export function scanDocument(
  command: string,
  database: string,
  findings: Finding[],
  checks: number,
  assumptions: Assumption[] = [],
  warnings: Warning[] = [],
): Document {
  return {
    tool: 'rowdoctor',
    schemaVersion: 1,
    command,
    database,
    warnings,
    findings: findings.map(findingJson),
    assumptions: assumptions.map(assumptionJson),
    summary: { findings: findings.length, rows: findings.reduce((n, f) => n + f.rows, 0), checks },
  };
}
