// core benchmark: how long probing the system takes (adapter + device creation, wasm feature checks).
// Usage: node bench/run.mjs [outDir]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemInfo } from '../dist/index.js';

const outDir = process.argv[2];
const times = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  await systemInfo();
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
console.log(`core bench: systemInfo() p50 ${times[2].toFixed(1)} ms, min ${times[0].toFixed(1)} ms (5 runs)`);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'core-bench.json'), JSON.stringify({ systemInfoMs: times }, null, 2));
}
process.exit(0);
