import { describe, expect, it } from 'vitest';
import { nextBatchSize } from '../../src/repair/batch-transaction.js';

describe('time-sized batches (--max-transaction-time 200ms, --batch-size 1000)', () => {
  it('grow while under the target, at most doubling, never above --batch-size', () => {
    expect(nextBatchSize(50, 10, 200, 1000)).toBe(100);
    expect(nextBatchSize(100, 120, 200, 1000)).toBe(166);
    expect(nextBatchSize(800, 10, 200, 1000)).toBe(1000);
    expect(nextBatchSize(1000, 10, 200, 1000)).toBe(1000);
  });
  it('grow toward the target, halve when over it or when the batch failed', () => {
    expect(nextBatchSize(300, 190, 200, 1000)).toBe(315);
    expect(nextBatchSize(300, 250, 200, 1000)).toBe(150);
    expect(nextBatchSize(300, null, 200, 1000)).toBe(150);
    expect(nextBatchSize(1, 900, 200, 1000)).toBe(1);
  });
  it('cut a batch that ran far past the target to what would have fitted it, not merely in half', () => {
    expect(nextBatchSize(1000, 128_000, 200, 1000)).toBe(1);
    expect(nextBatchSize(1000, 2000, 200, 1000)).toBe(100);
    expect(nextBatchSize(400, 300, 200, 1000)).toBe(200);
  });
  it('converge: a table at 2ms per group settles at batches under 200ms', () => {
    let size = 50;
    const sizes: number[] = [];
    for (let i = 0; i < 12; i++) {
      size = nextBatchSize(size, size * 2, 200, 1000);
      sizes.push(size);
    }
    expect(sizes.slice(-4).every((s) => s * 2 <= 200 && s >= 50)).toBe(true);
  });
});
