import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

// Workspace packages resolve to their TypeScript sources in tests, so a test sees the code as it is now
// rather than the last build (workers and the .wasm still come from the built packages).
const src = (pkg: string): string => fileURLToPath(new URL(`../${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      // the more specific entry first: aliases match as prefixes, in order
      '@lsp-offload/gpu-dawn/reference': fileURLToPath(
        new URL('../gpu-dawn/src/reference.ts', import.meta.url),
      ),
      '@lsp-offload/gpu-dawn': src('gpu-dawn'),
      '@lsp-offload/cpu-wasm': src('cpu-wasm'),
      '@lsp-offload/core': src('core'),
    },
  },
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
