// Matmul TFLOP/s on LLaMA-7B shapes (T = 2048 tokens): the forward C = A.B and the backward layouts
// dX = dY.W^T and dW = X^T.dY, with f32 operands and with f16 operands (f32 accumulation; tensor cores
// where the adapter exposes subgroup matrices), on the adapter Dawn finds. If the output folder already
// holds matmul_torch.json (bench/matmul_torch.py, same shapes, same GPU), its cuBLAS numbers go in the
// same table.
// Usage: node bench/matmul.mjs [outDir] [--tune] [--quick] [--scale N] [--no-robustness]
//   --tune     also time alternative tiles per path on three shapes (for choosing the defaults)
//   --quick    one shape only
//   --scale N  divide every dimension by N (a smoke run on a CPU adapter)
//   --no-robustness  create the device without Dawn's robustness transform (results go to
//                    matmul-bench-norobust.json)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpuRuntime, matmulStrided, subgroupMatrixSupport } from '../dist/index.js';
import { sig } from './format.mjs';

const args = process.argv.slice(2);
const tune = args.includes('--tune');
const quick = args.includes('--quick');
const scaleAt = args.indexOf('--scale');
const scale = scaleAt >= 0 ? Number(args[scaleAt + 1]) : 1;
const outDir = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--scale');

// name, M, N, K, layout. Y = X W with X: T x m, W: m x n; dX = dY W^T; dW = X^T dY.
export const SHAPES = [
  { name: 'fwd 4096->4096', m: 2048, n: 4096, k: 4096, transA: false, transB: false },
  { name: 'fwd 4096->11008', m: 2048, n: 11008, k: 4096, transA: false, transB: false },
  { name: 'fwd 11008->4096', m: 2048, n: 4096, k: 11008, transA: false, transB: false },
  { name: 'dX 4096->11008 (dY.W^T)', m: 2048, n: 4096, k: 11008, transA: false, transB: true },
  { name: 'dX 11008->4096 (dY.W^T)', m: 2048, n: 11008, k: 4096, transA: false, transB: true },
  { name: 'dW 4096->11008 (X^T.dY)', m: 4096, n: 11008, k: 2048, transA: true, transB: false },
  { name: 'dW 4096->4096 (X^T.dY)', m: 4096, n: 4096, k: 2048, transA: true, transB: false },
];

const robustness = !args.includes('--no-robustness');
const gpu = await GpuRuntime.create({ robustness });
const support = subgroupMatrixSupport(gpu);
const report = gpu.ctx.report;
console.log(`adapter: ${report.description}; subgroup matrix: ${JSON.stringify(support)}`);

/** Reusable operand buffers per (dtype, elements), filled once with small random values. */
const pool = new Map();
function operand(dtype, elements, label) {
  const key = `${dtype}:${elements}:${label}`;
  let t = pool.get(key);
  if (!t) {
    t = gpu.tensor(label, dtype, [elements], 'workspace');
    const data = new Float32Array(elements);
    let s = elements % 9973;
    for (let i = 0; i < elements; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      data[i] = (s / 4294967296 - 0.5) * 0.1;
    }
    gpu.write(t, data);
    pool.set(key, t);
  }
  return t;
}

/** Median ms per call over three timed batches sized to ~100 ms each (after a warm-up). */
async function time(shape, aType, bType, cType, choice) {
  const { m, n, k, transA, transB } = shape;
  const a = operand(aType, m * k, 'A');
  const b = operand(bType, k * n, 'B');
  const c = operand(cType, m * n, 'C');
  const call = () =>
    matmulStrided(gpu, {
      m,
      n,
      k,
      transA,
      transB,
      a: { tensor: a },
      b: { tensor: b },
      c: { tensor: c },
      ...choice,
    });
  let plan;
  try {
    plan = await gpu.ctx.scoped('matmul bench compile', call);
    await gpu.sync('matmul bench warm-up');
  } catch (e) {
    await gpu.sync('discard').catch(() => {});
    return { error: String(e.message ?? e).slice(0, 300) };
  }
  let t0 = performance.now();
  call();
  await gpu.sync('matmul bench');
  const once = performance.now() - t0;
  const reps = Math.max(3, Math.min(200, Math.ceil(100 / Math.max(once, 0.01))));
  const samples = [];
  for (let s = 0; s < 3; s++) {
    t0 = performance.now();
    for (let i = 0; i < reps; i++) call();
    await gpu.sync('matmul bench');
    samples.push((performance.now() - t0) / reps);
  }
  samples.sort((x, y) => x - y);
  const ms = samples[1];
  return { ms, tflops: (2 * m * n * k) / ms / 1e9, key: plan.key };
}

const shapes = (quick ? SHAPES.slice(0, 1) : SHAPES).map((s) => ({
  ...s,
  // the label names the features actually run (scaled down with --scale)
  name: scale === 1 ? s.name : s.name.replace(/\d+/g, (d) => String(Math.round(Number(d) / scale))),
  m: Math.round(s.m / scale),
  n: Math.round(s.n / scale),
  k: Math.round(s.k / scale),
}));
const rows = [];
for (const shape of shapes) {
  const row = {
    shape: shape.name,
    m: shape.m,
    n: shape.n,
    k: shape.k,
    transA: shape.transA,
    transB: shape.transB,
  };
  row.f32 = await time(shape, 'f32', 'f32', 'f32', {});
  row.f16 = await time(shape, 'f16', 'f16', 'f16', {});
  row.f16f32 = await time(shape, 'f16', 'f16', 'f32', {});
  rows.push(row);
  console.log(
    `${shape.name}: f32 ${sig(row.f32.tflops)} (${row.f32.key ?? row.f32.error}), ` +
      `f16 ${sig(row.f16.tflops)} (${row.f16.key ?? row.f16.error}), f16->f32 ${sig(row.f16f32.tflops)}`,
  );
}

const tuning = [];
if (tune) {
  const f32Tiles = [
    { bm: 128, bn: 64, bk: 16, tm: 8, tn: 8 },
    { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 },
    { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4 },
    { bm: 128, bn: 64, bk: 32, tm: 8, tn: 8 },
  ];
  const sgTiles = [
    { sgm: 2, sgn: 4, fm: 4, fn: 4, bk: 32, staging: 'shared', stages: 1 },
    { sgm: 4, sgn: 2, fm: 4, fn: 4, bk: 32, staging: 'shared', stages: 1 },
    { sgm: 2, sgn: 2, fm: 4, fn: 4, bk: 32, staging: 'direct', stages: 1 },
    { sgm: 2, sgn: 4, fm: 4, fn: 4, bk: 32, staging: 'direct', stages: 1 },
    { sgm: 2, sgn: 2, fm: 4, fn: 4, bk: 64, staging: 'direct', stages: 1 },
  ];
  for (const shape of [shapes[0], shapes[3], shapes[5]].filter(Boolean)) {
    for (const tile of f32Tiles) {
      const r = await time(shape, 'f32', 'f32', 'f32', { path: 'tiled', tile });
      tuning.push({ shape: shape.name, dtype: 'f32', tile, ...r });
      console.log(`tune ${shape.name} f32 ${JSON.stringify(tile)}: ${r.tflops?.toFixed(1) ?? r.error}`);
    }
    if (typeof support !== 'string') {
      for (const subgroupTile of sgTiles) {
        for (const cType of ['f32', 'f16']) {
          const r = await time(shape, 'f16', 'f16', cType, { path: 'subgroup-matrix', subgroupTile });
          tuning.push({ shape: shape.name, dtype: `f16->${cType}`, subgroupTile, ...r });
          console.log(
            `tune ${shape.name} f16->${cType} ${JSON.stringify(subgroupTile)}: ${r.tflops?.toFixed(1) ?? r.error}`,
          );
        }
      }
    }
  }
}

const torchFile = outDir && join(outDir, 'matmul_torch.json');
const torch = torchFile && existsSync(torchFile) ? JSON.parse(readFileSync(torchFile, 'utf8')) : undefined;
const torchRow = (name) => torch?.rows?.find((r) => r.shape === name);

const date = new Date().toISOString().slice(0, 10);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, robustness ? 'matmul-bench.json' : 'matmul-bench-norobust.json'),
    JSON.stringify({ date, adapter: report.description, robustness, support, rows, tuning, torch }, null, 2),
  );
}
const f = (x) => sig(x, 7);
console.log(
  `\nmatmul TFLOP/s on ${report.description} (${date}), robustness ${robustness ? 'on' : 'off'}; ` +
    `torch: ${torch?.device ?? 'not run'}`,
);
console.log(
  'shape                        M      N      K | ours f32 torch f32  ratio | ours f16 f16->f32 torch f16  ratio',
);
for (const r of rows) {
  const t = torchRow(r.shape);
  const ratio = (x, y) => (x && y ? (x / y).toFixed(2) : '-').padStart(6);
  console.log(
    `${r.shape.padEnd(26)} ${String(r.m).padStart(5)} ${String(r.n).padStart(6)} ${String(r.k).padStart(6)} |` +
      ` ${f(r.f32.tflops)}   ${f(t?.fp32)} ${ratio(r.f32.tflops, t?.fp32)} |` +
      ` ${f(r.f16.tflops)}  ${f(r.f16f32.tflops)}   ${f(t?.fp16)} ${ratio(r.f16.tflops, t?.fp16)}`,
  );
}
for (const t of pool.values()) t.release();
gpu.destroy();
process.exit(0);
