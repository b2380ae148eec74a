import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import type { Finding } from '../../src/checks/types.js';
import { renderScanText } from '../../src/report/scan-text.js';
import type { Rule } from '../../src/rules/types.js';

// Text output is linear in what it shows: values are cut before any width is measured, so the
// table's layout never sees a megabyte. (Before: 4 kB keys took 38 s, 1 MB keys never finished.)
// The bound is far above the ~50 ms it takes and far below what the quadratic layout took: it
// catches that bug back, not a loaded machine (speed goals live in the benchmarks).
const BOUND_MS = 5000;
function findingWithKeys(width: number, samples = 5): Finding {
  const key = 'x'.repeat(width);
  return {
    check: 'duplicate-rows',
    table: 'public.blob',
    key: ['body'],
    where: null,
    source: 'config',
    severity: 'error',
    groups: 5,
    rows: 5,
    samples: Array.from({ length: samples }, (_, i) => ({ key: [`${i}${key}`, key], ids: [i * 2 + 1, i * 2 + 2] })),
    origin: null,
    rule: { check: 'duplicate-rows', table: { id: 'public.blob' }, key: [] } as unknown as Rule,
  };
}

describe('scan text', () => {
  it('renders five 1 MB keys (two per sample) in seconds, not minutes', () => {
    const finding = findingWithKeys(1 << 20);
    const started = performance.now();
    const text = renderScanText({ database: 'db', findings: [finding], checks: 1, rules: [] }, new Chalk({ level: 0 }));
    const ms = performance.now() - started;
    expect(text).toContain('1,048,5');
    expect(text.length).toBeLessThan(20_000);
    expect(ms).toBeLessThan(BOUND_MS);
  });

  it('renders --sample 50 groups of 40-character keys in seconds (before: over two minutes)', () => {
    const finding = findingWithKeys(40, 50);
    const started = performance.now();
    const text = renderScanText({ database: 'db', findings: [finding], checks: 1, rules: [] }, new Chalk({ level: 0 }));
    expect(performance.now() - started).toBeLessThan(BOUND_MS);
    expect(text.split('\n').length).toBeGreaterThan(250);
  });
});
