import type { DiagnosisSql, Finding } from '../checks/types.js';
import type { Tx } from '../db.js';
import type { Rule } from '../rules/types.js';
import { creationColumn, creationHint } from './created-at.js';
import { duplicateDiagnosis } from './duplicates.js';
import { orphanDiagnosis } from './orphans.js';
import { sampleRows } from './sample-rows.js';
import type { DiagnoseOptions, Diagnosis, Signature } from './types.js';

/** The CTEs a rule's detect statement adds to diagnose its finding; null when there is nothing to date. */
export function diagnosisSql(rule: Rule, options: DiagnoseOptions): DiagnosisSql | null {
  const created = creationColumn(rule);
  if (!created) return null;
  if (rule.check === 'duplicate-rows') return duplicateDiagnosis(rule, created, options.recentMs);
  if (rule.check === 'orphaned-rows') return orphanDiagnosis(rule, created, options.recentMs);
  return null;
}

interface Figures {
  time: Pick<Diagnosis, 'first' | 'last' | 'perDay' | 'before' | 'recent' | 'undated'>;
  copyGap?: Diagnosis['copyGap'];
  differingColumns?: Diagnosis['differingColumns'];
  parentDeleted?: Diagnosis['parentDeleted'];
}

/**
 * Turn what detect() selected into the finding's diagnosis (or null and a hint when its table has
 * no creation time), and, with --show-rows, read its first sample groups' rows.
 */
export async function diagnoseFinding(tx: Tx, finding: Finding, options: DiagnoseOptions): Promise<void> {
  const rule = finding.rule;
  if (rule.check === 'soft-delete-conflicts' || finding.error) return;
  const created = creationColumn(rule);
  const figures = finding.diagnosisFigures as Figures | undefined;
  delete finding.diagnosisFigures;
  if (!created || !figures) {
    finding.diagnosis = null;
    finding.diagnosisHint = creationHint(rule.table);
  } else {
    const { time } = figures;
    const diagnosis: Diagnosis = {
      createdAt: created.column,
      first: time.first,
      last: time.last,
      perDay: time.perDay,
      before: time.before,
      recent: time.recent,
      stillHappening: time.recent > 0,
      undated: time.undated,
    };
    if (rule.check === 'duplicate-rows') {
      diagnosis.copyGap = figures.copyGap ?? null;
      diagnosis.signature = signatureOf(diagnosis.copyGap);
      diagnosis.differingColumns = figures.differingColumns ?? [];
    } else {
      diagnosis.parentDeleted = figures.parentDeleted ?? null;
    }
    finding.diagnosis = diagnosis;
  }
  if (options.showRows > 0) await sampleRows(tx, finding, created, options.showRows);
}

/** How copies came about, read from the gaps: p90 ≤ 2 s a double submit, ≤ 10 min a retry, else a re-creation. */
export function signatureOf(gap: Diagnosis['copyGap']): Signature | null {
  if (!gap) return null;
  if (gap.p90 <= 2) return 'double-submit';
  if (gap.p90 <= 600) return 'retry';
  return 're-creation';
}
