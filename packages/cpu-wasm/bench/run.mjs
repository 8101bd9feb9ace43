// cpu-wasm benchmark: SIMD axpy (12 bytes moved per element) over shared memory at 1..N threads, beside
// plain JS in the same run. Usage: node bench/run.mjs [outDir]  (writes outDir/cpu-wasm-bench.json)
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { KernelPool, createSharedMemory } from '../dist/index.js';

const outDir = process.argv[2];
const maxThreads = availableParallelism();
const threadCounts = [...new Set([1, 2, 4, 8, 16, maxThreads].filter((t) => t <= maxThreads))];
const sizes = [1 << 20, 16 << 20];
const memory = createSharedMemory((16 << 20) * 8 + (64 << 20), 2 ** 31);
const rows = [];

function timeIt(reps, fn) {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}

for (const n of sizes) {
  // plain JS reference
  const xs = new Float32Array(n).fill(1.5);
  const ys = new Float32Array(n).fill(0.5);
  const jsMs = timeIt(5, () => {
    for (let i = 0; i < n; i++) ys[i] += 0.001 * xs[i];
  });
  rows.push({ kernel: 'axpy', impl: 'js', n, threads: 1, ms: jsMs, gbps: (12 * n) / jsMs / 1e6 });
  for (const threads of threadCounts) {
    const pool = new KernelPool({ threads, memory });
    const xOff = pool.firstFreeByte;
    const yOff = xOff + n * 4;
    new Float32Array(memory.buffer, xOff, n).fill(1.5);
    new Float32Array(memory.buffer, yOff, n).fill(0.5);
    const chunk = Math.ceil(n / threads / 16) * 16;
    const step = () =>
      Promise.all(
        Array.from({ length: threads }, (_, t) => {
          const s = t * chunk;
          const len = Math.max(0, Math.min(chunk, n - s));
          return pool.run({ kernel: 'axpy_f32', yByteOffset: yOff + s * 4, xByteOffset: xOff + s * 4, length: len, a: 0.001 });
        }),
      );
    await step();
    const reps = n > 4e6 ? 10 : 50;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await step();
    const ms = (performance.now() - t0) / reps;
    rows.push({ kernel: 'axpy', impl: 'wasm-simd', n, threads, ms, gbps: (12 * n) / ms / 1e6 });
    await pool.destroy();
  }
}

console.log(`cpu-wasm bench on ${maxThreads} cores (${new Date().toISOString().slice(0, 10)})`);
console.log('kernel  impl       elements   threads      ms     GB/s');
for (const r of rows) {
  console.log(
    `${r.kernel.padEnd(7)} ${r.impl.padEnd(10)} ${String(r.n).padStart(9)} ${String(r.threads).padStart(8)} ${r.ms.toFixed(3).padStart(8)} ${r.gbps.toFixed(1).padStart(8)}`,
  );
}
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'cpu-wasm-bench.json'), JSON.stringify({ cores: maxThreads, rows }, null, 2));
}
