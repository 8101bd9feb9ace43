// gpu-dawn benchmark of causal flash attention, forward and forward+backward, at LLaMA-7B-like (T 2048,
// 32 heads x 128) and 1B-like (T 1024, 32 heads x 64, also with 8 kv heads) shapes, f32 and f16 storage.
// First checks the adapter's default tiles against the float64 reference on a small shape (the tiles a big
// GPU picks are not the ones CI's llvmpipe can run). Times are wall-clock over repeated dispatches ended by
// one GPU sync. TFLOP/s use the usual causal count (half of 4*B*H*T^2*D forward, 2.5x that backward), as
// for torch; our backward actually does 7 rather than 5 T^2*D products (dQ recomputes P and dP so that
// no float atomics are needed). bench/attention_torch.py times torch's scaled_dot_product_attention on the
// same shapes; run it first with the same <outDir> and its numbers join this table.
// Usage: node bench/attention.mjs <outDir> [--small] [--sweep]
//   --small: tiny shapes for a CPU adapter; --sweep: also time each fitting tile candidate per kernel.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sig } from './format.mjs';
import { GpuRuntime, attentionBackward, attentionForward } from '../dist/index.js';
import {
  attentionBackwardReference,
  attentionForwardReference,
  chooseAttentionTiles,
} from '../dist/reference.js';

const outDir = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : undefined;
const small = process.argv.includes('--small');
const sweep = process.argv.includes('--sweep');

const CONFIGS = small
  ? [
      { name: 'tiny-mha', batch: 1, seqLen: 64, nHeads: 2, nKvHeads: 2, headDim: 32 },
      { name: 'tiny-gqa', batch: 1, seqLen: 48, nHeads: 4, nKvHeads: 2, headDim: 16 },
    ]
  : [
      { name: 'llama7b', batch: 1, seqLen: 2048, nHeads: 32, nKvHeads: 32, headDim: 128 },
      { name: '1b-mha', batch: 1, seqLen: 1024, nHeads: 32, nKvHeads: 32, headDim: 64 },
      { name: '1b-gqa8', batch: 1, seqLen: 1024, nHeads: 32, nKvHeads: 8, headDim: 64 },
    ];
const REPS = small ? 2 : 10;

const gpu = await GpuRuntime.create();
const dtypes = gpu.has('shader-f16') ? ['f32', 'f16'] : ['f32'];
const adapter = gpu.ctx.report.description;
const date = new Date().toISOString().slice(0, 10);

/** Deterministic pseudo-random values in [-scale, scale). */
function values(n, seed, scale = 1) {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

function allocate(s, dtype) {
  const qShape = [s.batch, s.seqLen, s.nHeads, s.headDim];
  const kShape = [s.batch, s.seqLen, s.nKvHeads, s.headDim];
  const numel = (shape) => shape.reduce((a, b) => a * b, 1);
  const make = (label, shape, seed) =>
    gpu.upload(label, dtype, shape, values(numel(shape), seed), 'activations');
  return {
    q: make('q', qShape, 1),
    k: make('k', kShape, 2),
    v: make('v', kShape, 3),
    dO: make('dO', qShape, 4),
    o: gpu.tensor('o', dtype, qShape, 'activations'),
    lse: gpu.tensor('lse', 'f32', [s.batch, s.nHeads, s.seqLen], 'activations'),
    delta: gpu.tensor('delta', 'f32', [s.batch, s.nHeads, s.seqLen], 'workspace'),
    dq: gpu.tensor('dq', dtype, qShape, 'gradients'),
    dk: gpu.tensor('dk', dtype, kShape, 'gradients'),
    dv: gpu.tensor('dv', dtype, kShape, 'gradients'),
  };
}
const releaseAll = (t) => Object.values(t).forEach((x) => x.release());

/** Mean ms of `record` over REPS after one warm-up (which also compiles the pipelines). */
async function time(what, record) {
  record();
  await gpu.sync(what);
  const t0 = performance.now();
  for (let i = 0; i < REPS; i++) record();
  await gpu.sync(what);
  return (performance.now() - t0) / REPS;
}

function maxRelError(got, want) {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  return worst / Math.max(scale, 1e-30);
}

// ---- correctness of this adapter's default tiles --------------------------------------------------
const checks = [];
// (small: the head sizes of the small shapes timed below)
for (const headDim of small ? [16, 32] : [64, 128]) {
  for (const dtype of dtypes) {
    const s = { batch: 1, seqLen: small ? 37 : 77, nHeads: 6, nKvHeads: 2, headDim };
    const t = allocate(s, dtype);
    attentionForward(gpu, t);
    attentionBackward(gpu, t);
    const got = {};
    for (const name of ['q', 'k', 'v', 'dO', 'o', 'lse', 'dq', 'dk', 'dv'])
      got[name] = await gpu.read(t[name]);
    const ref = attentionForwardReference(got.q, got.k, got.v, s);
    const grads = attentionBackwardReference(got.q, got.k, got.v, got.dO, s);
    const errors = {
      o: maxRelError(got.o, ref.o),
      lse: maxRelError(got.lse, ref.lse),
      dq: maxRelError(got.dq, grads.dq),
      dk: maxRelError(got.dk, grads.dk),
      dv: maxRelError(got.dv, grads.dv),
    };
    const limit = dtype === 'f32' ? 1e-4 : 1e-2;
    const worst = Math.max(...Object.values(errors));
    checks.push({ headDim, dtype, shape: s, maxRelError: errors, ok: worst <= limit });
    releaseAll(t);
  }
}

// ---- timings ------------------------------------------------------------------------------------
const rows = [];
const sweepRows = [];
for (const s of CONFIGS) {
  const fwdFlops = 2 * s.batch * s.nHeads * s.seqLen * s.seqLen * s.headDim; // causal: half of 4*B*H*T^2*D
  const totalFlops = 3.5 * fwdFlops;
  for (const dtype of dtypes) {
    const t = allocate(s, dtype);
    const tiles = chooseAttentionTiles(gpu.device.limits, s.headDim);
    const fwdMs = await time('attention forward', () => attentionForward(gpu, t));
    const bwdMs = await time('attention backward', () => attentionBackward(gpu, t));
    rows.push({
      config: s.name,
      ...s,
      dtype,
      tiles,
      fwdMs,
      bwdMs,
      fwdBwdMs: fwdMs + bwdMs,
      fwdTflops: fwdFlops / fwdMs / 1e9,
      fwdBwdTflops: totalFlops / (fwdMs + bwdMs) / 1e9,
    });
    if (sweep) await sweepTiles(s, dtype, t, fwdFlops);
    releaseAll(t);
  }
}

async function sweepTiles(s, dtype, t, fwdFlops) {
  const q = (rowsPerBlock, keysPerBlock, threadRows, threadCols) => ({
    rowsPerBlock,
    keysPerBlock,
    threadRows,
    threadCols,
  });
  const k = (keysPerBlock, rowsPerBlock, threadKeys, threadCols) => ({
    keysPerBlock,
    rowsPerBlock,
    threadKeys,
    threadCols,
  });
  const queryTiles = [
    q(64, 64, 16, 16),
    q(64, 32, 16, 8),
    q(64, 32, 8, 16),
    q(32, 32, 8, 16),
    q(32, 32, 16, 8),
    q(32, 16, 8, 8),
    q(16, 32, 4, 16),
    q(16, 16, 4, 8),
  ];
  const keyTiles = [
    k(64, 32, 16, 8),
    k(32, 32, 8, 16),
    k(32, 16, 8, 16),
    k(32, 8, 16, 8),
    k(16, 16, 4, 16),
    k(16, 8, 8, 8),
  ];
  const fits = (tiles) => {
    try {
      chooseAttentionTiles(gpu.device.limits, s.headDim, tiles);
      return true;
    } catch {
      return false;
    }
  };
  for (const forward of queryTiles.filter((x) => fits({ forward: x }))) {
    const ms = await time('sweep forward', () => attentionForward(gpu, t, { tiles: { forward } }));
    sweepRows.push({
      config: s.name,
      dtype,
      kernel: 'forward',
      tiles: forward,
      ms,
      tflops: fwdFlops / ms / 1e9,
    });
  }
  // dQ and dK/dV alone: time the backward with one kernel's tiles varied, the others at their default.
  for (const dq of queryTiles.filter((x) => fits({ dq: x }))) {
    const ms = await time('sweep dq', () => attentionBackward(gpu, t, { tiles: { dq } }));
    sweepRows.push({ config: s.name, dtype, kernel: 'backward (dq varied)', tiles: dq, ms });
  }
  for (const dkdv of keyTiles.filter((x) => fits({ dkdv: x }))) {
    const ms = await time('sweep dkdv', () => attentionBackward(gpu, t, { tiles: { dkdv } }));
    sweepRows.push({ config: s.name, dtype, kernel: 'backward (dkdv varied)', tiles: dkdv, ms });
  }
}

// ---- torch, if bench/attention_torch.py wrote its results into the same folder ----------------------
let torch;
const torchFile = outDir && join(outDir, 'attention_torch.json');
if (torchFile && existsSync(torchFile)) torch = JSON.parse(readFileSync(torchFile, 'utf8'));
const torchRow = (config, dtype) => torch?.rows.find((r) => r.config === config && r.dtype === dtype);

if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'attention.json'),
    JSON.stringify(
      { adapter, date, reps: REPS, checks, rows, sweep: sweepRows, torch: torch ?? null },
      null,
      2,
    ),
  );
}

const f = (x, w) => sig(x, w);
if (sweepRows.length) {
  console.log('tile sweep (rows x keys x threadRows x threadCols, or keys x rows x threadKeys x threadCols)');
  for (const r of sweepRows)
    console.log(
      `${r.config.padEnd(8)} ${r.dtype} ${r.kernel.padEnd(22)} ${Object.values(r.tiles).join('x').padEnd(12)} ${f(r.ms, 8, 3)} ms`,
    );
}
console.log(`default-tile check vs float64 reference (max |err| / max |ref|):`);
for (const c of checks)
  console.log(
    `  D${c.headDim} ${c.dtype}: ${Object.entries(c.maxRelError)
      .map(([k, v]) => `${k} ${v.toExponential(1)}`)
      .join(', ')} ${c.ok ? 'ok' : 'FAILED'}`,
  );
console.log(
  `causal attention on ${adapter} (${date}); torch: ${torch ? `${torch.torch} on ${torch.device}` : 'not found'}`,
);
console.log(
  'config   dtype  B     T  H/KV    D | ours fwd  fwd+bwd  TFLOP/s | torch fwd  fwd+bwd  TFLOP/s | torch/ours',
);
for (const r of rows) {
  const tr = torchRow(r.config, r.dtype);
  console.log(
    `${r.config.padEnd(8)} ${r.dtype.padEnd(5)} ${String(r.batch).padStart(2)} ${String(r.seqLen).padStart(5)} ` +
      `${`${r.nHeads}/${r.nKvHeads}`.padStart(5)} ${String(r.headDim).padStart(4)} |` +
      `${f(r.fwdMs, 9)} ${f(r.fwdBwdMs, 8)} ${f(r.fwdBwdTflops, 8)} |` +
      `${f(tr?.fwdMs, 10)} ${f(tr?.fwdBwdMs, 8)} ${f(tr?.fwdBwdTflops, 8)} |` +
      `${f(tr ? tr.fwdBwdMs / r.fwdBwdMs : undefined, 11)}`,
  );
}
gpu.destroy();
process.exit(checks.every((c) => c.ok) ? 0 : 1);
