import { describe, expect, it } from 'vitest';
import { signatureOf } from '../../src/diagnosis/diagnose.js';
import type { Diagnosis } from '../../src/diagnosis/types.js';
import { diagnosisLine, sparkline } from '../../src/report/diagnosis-text.js';

const gap = (p90: number) => ({ p50: 0, p90, max: p90 });

describe('diagnosis text', () => {
  it('reads the signature from p90: double-submit up to 2 s, retry up to 10 min, then re-creation', () => {
    expect([2, 2.000001, 600, 600.000001].map((s) => signatureOf(gap(s)))).toEqual([
      'double-submit',
      'retry',
      'retry',
      're-creation',
    ]);
    expect(signatureOf(null)).toBeNull();
  });

  const d: Diagnosis = {
    createdAt: 'created_at',
    first: '2026-11-02T08:00:00Z',
    last: '2026-12-06T09:14:59.5Z',
    perDay: [
      { day: '2026-11-07', count: 1 },
      { day: '2026-12-05', count: 4 },
      { day: '2026-12-06', count: 3 },
    ],
    before: 12,
    recent: 3,
    stillHappening: true,
    undated: 0,
    copyGap: { p50: 0.4, p90: 0.9, max: 1.2 },
    signature: 'double-submit',
    differingColumns: [{ column: 'status', groups: 4 }],
  };

  it('prints the contract line', () => {
    expect(diagnosisLine(d, 86_400_000)).toBe(
      'first 2026-11-02 · last 2026-12-06 09:14 · still happening: 3 in 24 h · copies 0.4 s apart (double-submit) · ' +
        'copies differ in status (4 groups)',
    );
  });

  it('draws 30 UTC days, the window edges included, today rightmost', () => {
    expect(sparkline(d, '2026-12-06')).toBe(
      `2026-11-07 ▂${'·'.repeat(27)}█▆ 2026-12-06 (UTC; busiest day 4) · 12 before`,
    );
  });
});
