// gpu-dawn benchmark of the row kernels (RMSNorm, LayerNorm, RoPE, embedding, cross-entropy), forward and
// backward, at LLaMA-7B / DeepSeek-Coder-6.7B training shapes (4 x 1024 tokens, hidden 4096, 32 query and
// 8 key/value heads of 128, vocabulary 32256). Times are wall-clock over repeated dispatches ended by one
// GPU sync; GB/s counts the bytes each kernel must move at least (a bandwidth-bound family).
// bench/row-kernels_torch.py runs the same shapes with PyTorch on CUDA.
// Usage: node bench/row-kernels.mjs <outDir> [--small]   (--small: tiny shapes, for a CPU adapter)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sig } from './format.mjs';
import {
  GpuRuntime,
  createRopeTable,
  crossEntropyBackward,
  crossEntropyForward,
  embeddingBackward,
  embeddingForward,
  layerNormBackward,
  layerNormForward,
  rmsNormBackward,
  rmsNormForward,
  ropeBackward,
  ropeForward,
} from '../dist/index.js';

const outDir = process.argv[2];
const small = process.argv.includes('--small');
const S = small
  ? { tokens: 64, hidden: 96, heads: 4, kvHeads: 2, headDim: 16, vocab: 1000, reps: 3 }
  : { tokens: 4096, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, vocab: 32256, reps: 20 };

const gpu = await GpuRuntime.create();
const rows = [];

/** Time `record` (which records dispatches) over S.reps repetitions after one warm-up. */
async function time(name, bytes, record) {
  record();
  await gpu.sync(name);
  const t0 = performance.now();
  for (let i = 0; i < S.reps; i++) record();
  await gpu.sync(name);
  const ms = (performance.now() - t0) / S.reps;
  rows.push({ kernel: name, ms, gbps: bytes / ms / 1e6 });
}

function filled(label, dtype, shape, fn) {
  const n = shape.reduce((a, b) => a * b, 1);
  const data =
    dtype === 'i32'
      ? Int32Array.from({ length: n }, (_, i) => fn(i))
      : Float32Array.from({ length: n }, (_, i) => fn(i));
  return gpu.upload(label, dtype, shape, data);
}

const { tokens: T, hidden: C, vocab: V } = S;
const act = T * C * 4;
const x = filled('x', 'f32', [T, C], (i) => Math.sin(i * 0.37));
const dy = filled('dy', 'f32', [T, C], (i) => Math.cos(i * 0.11));
const y = gpu.tensor('y', 'f32', [T, C], 'activations');
const dx = gpu.tensor('dx', 'f32', [T, C], 'activations');
const rstd = gpu.tensor('rstd', 'f32', [T], 'activations');
const mean = gpu.tensor('mean', 'f32', [T], 'activations');
const dw = gpu.tensor('dw', 'f32', [C], 'gradients');
const db = gpu.tensor('db', 'f32', [C], 'gradients');
for (const wdt of ['f32', 'f16']) {
  const w = filled(`w.${wdt}`, 'f32', [C], (i) => 1 + 0.001 * i);
  const weight =
    wdt === 'f32'
      ? w
      : gpu.upload(
          'w16',
          'f16',
          [C],
          Array.from({ length: C }, (_, i) => 1 + 0.001 * i),
        );
  const bias =
    wdt === 'f32'
      ? filled('b', 'f32', [C], () => 0.1)
      : gpu.upload('b16', 'f16', [C], new Array(C).fill(0.1));
  await time(`rmsnorm fwd (w ${wdt})`, 2 * act, () => rmsNormForward(gpu, { x, weight, y, rstd, eps: 1e-6 }));
  await time(`rmsnorm bwd (w ${wdt})`, 3 * act, () =>
    rmsNormBackward(gpu, { dy, x, weight, rstd, dx, dweight: dw }),
  );
  await time(`layernorm fwd (w ${wdt})`, 2 * act, () =>
    layerNormForward(gpu, { x, weight, bias, y, mean, rstd, eps: 1e-5 }),
  );
  await time(`layernorm bwd (w ${wdt})`, 3 * act, () =>
    layerNormBackward(gpu, { dy, x, weight, mean, rstd, dx, dweight: dw, dbias: db }),
  );
  if (weight !== w) weight.release();
  w.release();
  bias.release();
}

const table = createRopeTable(gpu, {
  headDim: S.headDim,
  maxPositions: 4096,
  theta: 100000,
  linearScalingFactor: 4,
});
const q = gpu.tensor('q', 'f32', [T, S.heads, S.headDim], 'activations');
const k = gpu.tensor('k', 'f32', [T, S.kvHeads, S.headDim], 'activations');
const qkBytes = 2 * 4 * T * (S.heads + S.kvHeads) * S.headDim;
const positions = { offset: 0, sequenceLength: Math.min(T, 1024) };
await time('rope fwd q+k', qkBytes, () => ropeForward(gpu, { q, k, table, positions }));
await time('rope bwd dq+dk', qkBytes, () => ropeBackward(gpu, { dq: q, dk: k, table, positions }));

const ids = filled('ids', 'i32', [T], (i) => (i * 7919) % V);
for (const tdt of ['f32', 'f16']) {
  const wte =
    tdt === 'f32'
      ? gpu.tensor('wte', 'f32', [V, C], 'weights')
      : gpu.tensor('wte16', 'f16', [V, C], 'weights');
  await time(`embedding fwd (${tdt} table)`, act + act * (tdt === 'f32' ? 1 : 0.5), () =>
    embeddingForward(gpu, { ids, table: wte, out: y }),
  );
  wte.release();
}
const wteGrad = gpu.tensor('wteGrad', 'f32', [V, C], 'gradients');
await time('embedding bwd (accumulate)', 2 * act, () =>
  embeddingBackward(gpu, { dy, ids, tableGrad: wteGrad, accumulate: true }),
);
await time('embedding bwd (+ clear)', 2 * act + V * C * 4, () =>
  embeddingBackward(gpu, { dy, ids, tableGrad: wteGrad }),
);
wteGrad.release();

const logits = filled('logits', 'f32', [T, V], (i) => Math.sin(i * 0.013) * 4);
const targets = filled('targets', 'i32', [T], (i) => (i % 10 === 0 ? -100 : (i * 31) % V));
const losses = gpu.tensor('losses', 'f32', [T], 'activations');
const lse = gpu.tensor('lse', 'f32', [T], 'activations');
const meanLoss = gpu.tensor('meanLoss', 'f32', [1], 'activations');
const keptCount = gpu.tensor('keptCount', 'u32', [1], 'activations');
const dlogits = gpu.tensor('dlogits', 'f32', [T, V], 'activations');
const logitBytes = T * V * 4;
await time('cross-entropy fwd', logitBytes, () =>
  crossEntropyForward(gpu, { logits, targets, losses, logSumExp: lse, meanLoss, keptCount }),
);
await time('cross-entropy bwd', 2 * logitBytes, () =>
  crossEntropyBackward(gpu, { logits, targets, logSumExp: lse, keptCount, dlogits }),
);

const adapter = gpu.ctx.report.description;
const date = new Date().toISOString().slice(0, 10);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'row-kernels.json'),
    JSON.stringify({ adapter, date, shapes: S, rows }, null, 2),
  );
}
console.log(`row kernels on ${adapter} (${date}), tokens ${T}, hidden ${C}, vocab ${V}`);
console.log('kernel                          ms       GB/s');
for (const r of rows) console.log(`${r.kernel.padEnd(28)} ${sig(r.ms, 9)} ${sig(r.gbps, 9)}`);
gpu.destroy();
process.exit(0);
