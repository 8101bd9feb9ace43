import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Dawn and wasm thread pools are process-wide resources: one file at a time, in forks.
    pool: 'forks',
    fileParallelism: false,
  },
});
