// gpu-dawn benchmark: axpby kernel bandwidth (12 bytes per element) on the adapter Dawn finds, timed by
// GPU work completion over repeated dispatches. Usage: node bench/run.mjs [outDir]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GpuRuntime, axpby } from '../dist/index.js';

const outDir = process.argv[2];
const gpu = await GpuRuntime.create();
const ctx = gpu.ctx;
const maxBytes = Math.min(ctx.report.limits.maxStorageBufferBindingSize, 256 << 20);
const sizes = [1 << 20, 16 << 20, maxBytes / 4].filter((n, i, a) => n * 4 <= maxBytes && a.indexOf(n) === i);
const rows = [];
for (const n of sizes) {
  const x = gpu.tensor('x', 'f32', [n], 'workspace');
  const y = gpu.tensor('y', 'f32', [n], 'workspace');
  const reps = 20;
  const run = async () => {
    for (let i = 0; i < reps; i++) axpby(gpu, x, y, 1.0001, 0.5);
    await gpu.sync('axpby bench');
  };
  await run();
  const t0 = performance.now();
  await run();
  const ms = (performance.now() - t0) / reps;
  rows.push({ kernel: 'axpby', n, ms, gbps: (12 * n) / ms / 1e6 });
  x.release();
  y.release();
}
console.log(`gpu-dawn bench on ${ctx.report.description} (${new Date().toISOString().slice(0, 10)})`);
console.log('kernel   elements        ms     GB/s');
for (const r of rows)
  console.log(
    `${r.kernel.padEnd(8)} ${String(r.n).padStart(9)} ${r.ms.toFixed(3).padStart(9)} ${r.gbps.toFixed(1).padStart(8)}`,
  );
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'gpu-dawn-bench.json'),
    JSON.stringify({ adapter: ctx.report.description, rows }, null, 2),
  );
}
gpu.destroy();
process.exit(0);
