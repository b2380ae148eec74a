import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    // Files run in parallel, each in its own database on the one server.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
