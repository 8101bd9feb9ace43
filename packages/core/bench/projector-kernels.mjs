// Compress and apply through sparse projectors against the dense weight-gradient matmul they replace,
// timed in one run on the adapter Dawn finds. LLaMA-7B layer shapes by default (T = 4096 tokens,
// 4096 x 4096 and 4096 x 11008 weights, d = 2048, r = 8):
//   compress  A = X R, B = dY L (sparse gathers), S = B^T A (d x d matmul)
//   apply     F = L D, W += F R^T (f16 weights, stochastic rounding)
//   dense     dW = dY^T X (the out x in weight gradient), f32 and f16 operands
// Usage: node bench/projector-kernels.mjs [outDir] [--small]   (--small: shapes / 16, for a CPU adapter)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GpuRuntime, SparseProjector, Rng } from '../dist/index.js';
import { addTimesProjT, expandRows, fillNormal, gatherColumns, matmul } from '@lsp-offload/gpu-dawn';

const args = process.argv.slice(2);
const small = args.includes('--small');
const outDir = args.find((a) => !a.startsWith('--'));
const s = small ? 16 : 1;
const T = 4096 / s;
const d = 2048 / s;
const r = 8;
const layers = [
  { name: 'q/k/v/o 4096x4096', rows: 4096 / s, cols: 4096 / s },
  { name: 'gate/up 11008x4096', rows: 11008 / s, cols: 4096 / s },
  { name: 'down 4096x11008', rows: 4096 / s, cols: 11008 / s },
];

const gpu = await GpuRuntime.create({ robustness: false });
const rng = new Rng(1);
const reps = small ? 3 : 10;

async function time(fn) {
  fn();
  await gpu.sync('warmup');
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  await gpu.sync('timed');
  return (performance.now() - t0) / reps;
}

const rows = [];
for (const l of layers) {
  // stored weight rows x cols (out x in): X [T, cols], dY [T, rows]
  const x = gpu.tensor('X', 'f32', [T, l.cols], 'activations');
  const dy = gpu.tensor('dY', 'f32', [T, l.rows], 'activations');
  fillNormal(gpu, x, { seed: 1 });
  fillNormal(gpu, dy, { seed: 2 });
  const left = SparseProjector.random(l.rows, d, r, rng).toGpu(gpu, 'L');
  const right = SparseProjector.random(l.cols, d, r, rng).toGpu(gpu, 'R');
  const a = gpu.tensor('A', 'f32', [T, d], 'workspace');
  const b = gpu.tensor('B', 'f32', [T, d], 'workspace');
  const sMat = gpu.tensor('S', 'f32', [d, d], 'gradients');
  const dMat = gpu.tensor('D', 'f32', [d, d], 'gradients');
  fillNormal(gpu, dMat, { seed: 3, std: 1e-4 });
  const f = gpu.tensor('F', 'f32', [l.rows, d], 'workspace');
  const w = gpu.tensor('W', 'f16', [l.rows, l.cols], 'weights');
  fillNormal(gpu, w, { seed: 4, std: 0.02 });
  const dw32 = gpu.tensor('dW', 'f32', [l.rows, l.cols], 'gradients');
  const x16 = gpu.tensor('X16', 'f16', [T, l.cols], 'activations');
  const dy16 = gpu.tensor('dY16', 'f16', [T, l.rows], 'activations');
  fillNormal(gpu, x16, { seed: 5 });
  fillNormal(gpu, dy16, { seed: 6 });
  const gathers = await time(() => {
    gatherColumns(gpu, x, right, a);
    gatherColumns(gpu, dy, left, b);
  });
  const sMs = await time(() => matmul(gpu, b, a, sMat, { transA: true }));
  const applyMs = await time(() => {
    expandRows(gpu, dMat, left, f);
    addTimesProjT(gpu, w, f, right, 1, 7);
  });
  const dense32 = await time(() => matmul(gpu, dy, x, dw32, { transA: true }));
  const dense16 = await time(() => matmul(gpu, dy16, x16, dw32, { transA: true }));
  rows.push({
    layer: l.name,
    T,
    d,
    r,
    gathersMs: gathers,
    sMs,
    compressMs: gathers + sMs,
    applyMs,
    dense32Ms: dense32,
    dense16Ms: dense16,
  });
  for (const t of [x, dy, a, b, sMat, dMat, f, w, dw32, x16, dy16]) t.release();
}
const date = new Date().toISOString().slice(0, 10);
console.log(
  `sparse projector kernels vs the dense weight gradient on ${gpu.ctx.report.description} (${date}), T=${T}, d=${d}, r=${r}`,
);
console.log(
  'layer                 gathers ms   S ms  compress ms  apply ms  dense dW f32 ms  f16 ms  compress/dense16',
);
for (const x of rows) {
  console.log(
    `${x.layer.padEnd(20)} ${x.gathersMs.toFixed(2).padStart(10)} ${x.sMs.toFixed(2).padStart(6)} ${x.compressMs.toFixed(2).padStart(12)} ${x.applyMs.toFixed(2).padStart(9)} ${x.dense32Ms.toFixed(2).padStart(16)} ${x.dense16Ms.toFixed(2).padStart(7)} ${(x.compressMs / x.dense16Ms).toFixed(2).padStart(17)}`,
  );
}
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'projector-kernels.json'),
    JSON.stringify({ date, adapter: gpu.ctx.report.description, rows }, null, 2),
  );
}
gpu.destroy();
process.exit(0);
