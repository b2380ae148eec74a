import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    // Files run in parallel, each in its own database on the one server.
    pool: 'forks',
    // Files mostly wait on the server and on the CLI subprocesses they spawn: two at a time keep 2 cores busy
    // (vitest's default, cores − 1, would run them one by one there).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
