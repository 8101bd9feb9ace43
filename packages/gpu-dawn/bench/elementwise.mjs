// Element-wise, cast, reduction and AdamW kernels: effective bandwidth (bytes the kernel must move /
// time) on the adapter Dawn finds, timed by GPU work completion over repeated dispatches.
// Usage: node bench/elementwise.mjs [outDir] [elements]   (default 2^26 elements; 2^20 on a CPU adapter)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sig } from './format.mjs';
import {
  GpuRuntime,
  adamw,
  add,
  applyDelta,
  biasAdd,
  cast,
  columnSum,
  createAdamWState,
  gelu,
  geluBackward,
  globalNorm,
  nonFiniteCount,
  silu,
  swiglu,
  swigluBackward,
} from '../dist/index.js';

const outDir = process.argv[2];
const gpu = await GpuRuntime.create();
const report = gpu.ctx.report;
const onCpu = /llvmpipe|lavapipe|swiftshader/i.test(`${report.description} ${report.device}`);
const maxF32 = Math.floor(report.limits.maxStorageBufferBindingSize / 4);
const n = Math.min(Number(process.argv[3] ?? (onCpu ? 2 ** 20 : 2 ** 26)), maxF32);
const cols = 4096;
const reps = onCpu ? 3 : 20;

const tensors = [];
const t = (label, dtype, shape = [n]) => {
  const x = gpu.tensor(label, dtype, shape, 'workspace');
  gpu.fill32(x, 0x3c003c00); // 1.0 in f16 halves, 2^-7 ish in f32: finite everywhere
  tensors.push(x);
  return x;
};

const x32 = t('x32', 'f32');
const y32 = t('y32', 'f32');
const z32 = t('z32', 'f32');
const d32a = t('d32a', 'f32');
const d32b = t('d32b', 'f32');
const x16 = t('x16', 'f16');
const y16 = t('y16', 'f16');
const z16 = t('z16', 'f16');
const d16a = t('d16a', 'f16');
const d16b = t('d16b', 'f16');
const bias32 = t('bias32', 'f32', [cols]);
const rows = Math.floor(n / cols);
const mat32 = t('mat32', 'f32', [rows, cols]);
const colOut = t('colOut', 'f32', [cols]);
const stats = t('stats', 'f32', [1]);
const count = t('count', 'u32', [1]);
const w32 = t('w32', 'f32');
const s32 = createAdamWState(gpu, w32);
const w16 = t('w16', 'f16');
const s16 = createAdamWState(gpu, w16, { master: true });
tensors.push(s32.m, s32.v, s16.m, s16.v, s16.master);

let step = 0;
/** [name, bytes moved per element, record one launch] */
const cases = [
  ['silu f32', 8, () => silu(gpu, x32, y32)],
  ['silu f16', 4, () => silu(gpu, x16, y16)],
  ['swiglu f32', 12, () => swiglu(gpu, x32, y32, z32)],
  ['swiglu f16', 6, () => swiglu(gpu, x16, y16, z16)],
  ['swiglu bwd f32', 20, () => swigluBackward(gpu, x32, y32, z32, { dGate: d32a, dUp: d32b })],
  ['swiglu bwd f16', 10, () => swigluBackward(gpu, x16, y16, z16, { dGate: d16a, dUp: d16b })],
  ['gelu f32', 8, () => gelu(gpu, x32, y32)],
  ['gelu bwd f32', 12, () => geluBackward(gpu, x32, y32, z32)],
  ['residual add f32', 12, () => add(gpu, x32, y32, x32)],
  ['residual add f16', 6, () => add(gpu, x16, y16, x16)],
  ['bias add f32', 8, () => biasAdd(gpu, mat32, bias32, mat32)],
  ['cast f32->f16', 6, () => cast(gpu, x32, 'f16', y16)],
  ['cast f16->f32', 6, () => cast(gpu, x16, 'f32', y32)],
  ['f16 += f32 (stoch.)', 8, () => applyDelta(gpu, x16, y32, { alpha: 1e-6, seed: 1, step: ++step })],
  ['global norm f32', 4, () => globalNorm(gpu, x32, { out: stats })],
  ['non-finite f16', 2, () => nonFiniteCount(gpu, x16, { out: count })],
  ['bias grad f32', 4, () => columnSum(gpu, mat32, colOut)],
  ['adamw f32', 28, () => adamw(gpu, { param: w32, grad: x32, ...s32 }, { lr: 1e-9, step: ++step })],
  ['adamw f16+master', 28, () => adamw(gpu, { param: w16, grad: x16, ...s16 }, { lr: 1e-9, step: ++step })],
];

const results = [];
for (const [name, bytesPerElement, run] of cases) {
  const elements = name.startsWith('bias') ? rows * cols : n;
  run();
  await gpu.sync(name); // compile + warm up
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) run();
  await gpu.sync(name);
  const ms = (performance.now() - t0) / reps;
  results.push({
    kernel: name,
    elements,
    bytesPerElement,
    ms,
    gbps: (bytesPerElement * elements) / ms / 1e6,
  });
}

const date = new Date().toISOString().slice(0, 10);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'elementwise.json'),
    JSON.stringify({ date, adapter: report.description, elements: n, reps, rows: results }, null, 2),
  );
}
console.log(
  `element-wise kernels on ${report.description} (${date}), ${n} elements, mean of ${reps} launches`,
);
console.log('kernel                  bytes/el        ms      GB/s');
for (const r of results)
  console.log(
    `${r.kernel.padEnd(22)} ${String(r.bytesPerElement).padStart(9)} ${sig(r.ms, 9)} ${sig(r.gbps, 9)}`,
  );
for (const x of tensors) x.release();
gpu.destroy();
process.exit(0);
