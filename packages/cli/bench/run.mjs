// cli benchmark: wall time of `lsp-offload info` as a user sees it (process start to exit).
// Usage: node bench/run.mjs [outDir]
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const outDir = process.argv[2];
const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const times = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  execFileSync(process.execPath, [bin, 'info', '--json'], { stdio: 'ignore' });
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
console.log(`cli bench: 'lsp-offload info' wall p50 ${times[2].toFixed(0)} ms, min ${times[0].toFixed(0)} ms (5 runs)`);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'cli-bench.json'), JSON.stringify({ infoWallMs: times }, null, 2));
}
