#!/usr/bin/env node
// The command npm links as `lsp-offload` (package.json "bin"). It is committed, not built, so the link is
// made at `npm ci` time, before dist/ exists; it runs the built CLI, or says how to build it.
try {
  await import('../dist/bin.js');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/bin.js')) throw e;
  console.error(
    'lsp-offload: the CLI is not built yet: run `npm run build` (or `tools/setup && npm start`) first',
  );
  process.exit(1);
}
