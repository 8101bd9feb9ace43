// cpu-wasm benchmark: AdamW elements/s at 1, 2, 4, ... N threads for 1M, 16M and 64M fp32 params,
// with and without the fused fp16 copy of the params (addParam's paramF16), beside a plain-JS AdamW
// and a WASM stream copy (the memory-bandwidth roofline) in the same run.
//
// Usage: node bench/run.mjs [outDir] [--sizes 1M,16M,64M] [--threads 1,2,4] [--big[=GiB]]
//   (also: npx nx run @lsp-offload/cpu-wasm:bench -- <outDir> [flags])
// Writes <outDir>/cpu-wasm-bench.json (or cpu-wasm-bench-big.json with --big) when outDir is given.
// --big: more than 8 GiB of optimizer state (default 9 GiB) over several 4 GiB memories, at N threads,
// with a spot check of the results against a float64 reference. Meant for the 128 GB GPU host.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AdamW, KernelPool, OP, PieceWriter, createSharedMemory } from '../dist/index.js';

const USAGE = 'usage: node bench/run.mjs [outDir] [--sizes 1M,16M,64M] [--threads 1,2,4] [--big[=GiB]]';
const cores = availableParallelism();
const opts = { sizes: '1M,16M,64M', threads: undefined, big: undefined, outDir: undefined };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const eq = a.indexOf('=');
  const [key, value] = eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
  if (key === '--sizes' || key === '--threads') opts[key.slice(2)] = value ?? process.argv[++i];
  else if (key === '--big') opts.big = Number.parseFloat(value ?? '9');
  else if (a.startsWith('--') || opts.outDir !== undefined) throw new Error(`${USAGE}\n(unexpected ${a})`);
  else opts.outDir = a;
}
const outDir = opts.outDir;
const parseCount = (s) =>
  Math.round(Number.parseFloat(s) * (/m$/i.test(s) ? 2 ** 20 : /k$/i.test(s) ? 2 ** 10 : 1));
const sizes = opts.sizes.split(',').map(parseCount);
const maxThreads = cores;
const threadCounts = opts.threads
  ? opts.threads.split(',').map(Number)
  : [...new Set([...Array.from({ length: 8 }, (_, i) => 2 ** i), maxThreads].filter((t) => t <= maxThreads))];
if (
  sizes.some((n) => !(n > 0)) ||
  threadCounts.some((t) => !(t >= 1 && t <= maxThreads)) ||
  Number.isNaN(opts.big)
)
  throw new Error(USAGE);
const BYTES_PER_ELEMENT = 28; // AdamW reads p, g, m, v (16 bytes) and writes p, m, v (12)
const BYTES_PER_ELEMENT_F16P = 30; // ... and writes the fp16 copy of p (2)
const HP = { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 };

/** Median time of `fn` over at least `minReps` runs and about `minMs` milliseconds, after a warm-up. */
async function time(fn, minReps = 3, minMs = 400) {
  await fn();
  const times = [];
  const start = performance.now();
  while (times.length < minReps || (performance.now() - start < minMs && times.length < 50)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function fillPattern(a, seed) {
  // cheap deterministic values in [-1, 1)
  let x = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = x / 2 ** 31 - 1;
  }
}

/** Plain JavaScript AdamW over Float32Arrays (one thread): the baseline the WASM kernels replace. */
function jsAdamw(p, g, m, v, t) {
  const { lr, b1, b2, eps, wd } = HP;
  const ss = lr / (1 - b1 ** t);
  const isb = 1 / Math.sqrt(1 - b2 ** t);
  const decay = 1 - lr * wd;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + (1 - b1) * gi;
    const vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - (ss * mi) / (Math.sqrt(vi) * isb + eps);
  }
}

const rows = [];
const maxN = Math.max(...sizes);
// The copy roofline: its own pool over one memory holding src and dst of the largest size.
const copyPool = new KernelPool({ threads: maxThreads });
const copyMem = createSharedMemory(copyPool.firstFreeByte + 8 * maxN + 69696 + 64);
const copyId = copyPool.attach(copyMem);
const src = copyPool.firstFreeByte;
const dst = src + 4 * maxN + 69696; // not a power of two apart: see STAGGER_BYTES in src/layout.ts
new Float32Array(copyMem.buffer, src, maxN).fill(1.5);
new Float32Array(copyMem.buffer, dst, maxN).fill(0);

function copyStep(n, threads) {
  const chunk = Math.ceil(n / threads / 16) * 16;
  const tasks = [];
  for (let s = 0; s < n; s += chunk) {
    const w = new PieceWriter();
    const len = Math.min(chunk, n - s);
    w.push(OP.COPY_F32, copyId, len, src + 4 * s, dst + 4 * s);
    tasks.push(copyPool.run({ pieces: w.finish() }));
  }
  return Promise.all(tasks);
}

if (opts.big === undefined) {
  for (const n of sizes) {
    const label = n >= 2 ** 20 ? `${n / 2 ** 20}M` : `${n}`;
    console.error(`size ${label}: plain JS ...`);
    const p = new Float32Array(n);
    const g = new Float32Array(n);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    fillPattern(p, 1);
    fillPattern(g, 2);
    let tjs = 0;
    const jsMs = await time(() => jsAdamw(p, g, m, v, ++tjs), 2, 300);
    const opt = new AdamW({
      threads: maxThreads,
      lr: HP.lr,
      betas: [HP.b1, HP.b2],
      eps: HP.eps,
      weightDecay: HP.wd,
    });
    opt.addParam('w', p);
    opt.grad('w').set(g);
    opt.addParam('w16', p, { paramF16: true }); // its own arrays (another memory when 'w' fills one)
    opt.grad('w16').set(g);
    const w = ['w'];
    for (const threads of threadCounts) {
      console.error(`size ${label}: ${threads} thread(s) ...`);
      const unchecked = await time(() => opt.step({ names: w, threads, nonFinite: 'propagate' }));
      const f16p = await time(() => opt.step({ names: ['w16'], threads, nonFinite: 'propagate' }));
      const checked = await time(() => opt.step({ names: w, threads }));
      const copy = await time(() => copyStep(n, threads));
      rows.push({
        elements: n,
        threads,
        wasmUncheckedMs: unchecked,
        wasmCheckedMs: checked,
        wasmF16pMs: f16p,
        copyMs: copy,
        jsMs,
        wasmUncheckedGelemPerS: n / unchecked / 1e6,
        wasmCheckedGelemPerS: n / checked / 1e6,
        wasmF16pGelemPerS: n / f16p / 1e6,
        jsGelemPerS: n / jsMs / 1e6,
        wasmUncheckedGBps: (BYTES_PER_ELEMENT * n) / unchecked / 1e6,
        wasmF16pGBps: (BYTES_PER_ELEMENT_F16P * n) / f16p / 1e6,
        copyGBps: (8 * n) / copy / 1e6,
      });
    }
    await opt.destroy();
  }
}

let big;
if (opts.big !== undefined) big = await bigRun(opts.big);
await copyPool.destroy();

async function bigRun(gib) {
  // Tensors of 64M elements; 16 bytes of state each (p, g, m, v) over 4 GiB memories.
  const perTensor = 64 * 2 ** 20;
  const tensors = Math.ceil((gib * 2 ** 30) / (16 * perTensor));
  const threads = maxThreads;
  console.error(
    `big: ${tensors} tensors of ${perTensor} elements (${((tensors * perTensor * 16) / 2 ** 30).toFixed(1)} GiB)`,
  );
  const opt = new AdamW({
    threads,
    memoryCapBytes: 2 ** 32,
    lr: HP.lr,
    betas: [HP.b1, HP.b2],
    eps: HP.eps,
    weightDecay: HP.wd,
  });
  const init = new Float32Array(perTensor);
  const grad = new Float32Array(perTensor);
  fillPattern(init, 3);
  fillPattern(grad, 4);
  for (let i = 0; i < tensors; i++) {
    opt.addParam(`t${i}`, init);
    opt.setGrad(`t${i}`, grad);
  }
  const steps = 5; // the first one also faults in the moments' pages: it is not timed
  const times = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    await opt.step();
    times.push(performance.now() - t0);
  }
  // Spot check: a few elements of every tensor against float64 AdamW with the same inputs.
  let worst = 0;
  const probe = [0, 1, 12345, perTensor - 1];
  for (let i = 0; i < tensors; i++) {
    const segs = opt.segments(`t${i}`);
    for (const k of probe) {
      let p = init[k];
      let m = 0;
      let v = 0;
      for (let t = 1; t <= steps; t++) {
        const gk = grad[k];
        m = HP.b1 * m + (1 - HP.b1) * gk;
        v = HP.b2 * v + (1 - HP.b2) * gk * gk;
        p =
          p * (1 - HP.lr * HP.wd) -
          (HP.lr * (m / (1 - HP.b1 ** t))) / (Math.sqrt(v / (1 - HP.b2 ** t)) + HP.eps);
      }
      const seg = segs.find((s) => k >= s.start && k < s.start + s.length);
      worst = Math.max(worst, Math.abs(seg.param[k - seg.start] - p) / Math.abs(p));
    }
  }
  const stats = opt.memoryStats();
  await opt.destroy();
  const ms = times.slice(1).reduce((a, b) => a + b, 0) / (steps - 1);
  const n = tensors * perTensor;
  return {
    tensors,
    elements: n,
    stateBytes: n * 16,
    memories: stats.memories,
    threads,
    stepMs: times,
    gelemPerS: n / ms / 1e6,
    gbps: (BYTES_PER_ELEMENT * n) / ms / 1e6,
    worstRelErr: worst,
    ok: worst < 1e-5,
  };
}

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores,
  memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
  node: process.version,
  loadAvg1m: +loadavg()[0].toFixed(2),
};
const date = new Date().toISOString();
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, big ? 'cpu-wasm-bench-big.json' : 'cpu-wasm-bench.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        date,
        machine,
        bytesPerElement: BYTES_PER_ELEMENT,
        bytesPerElementF16p: BYTES_PER_ELEMENT_F16P,
        rows,
        big,
      },
      null,
      2,
    ) + '\n',
  );
  console.error(`wrote ${file}`);
}

const f = (x, d = 2) => x.toFixed(d).padStart(8);
console.log(
  `cpu-wasm AdamW bench, ${date.slice(0, 10)}, ${machine.cpu}, ${cores} cores, load ${machine.loadAvg1m}, Node ${machine.node}`,
);
if (big) {
  console.log(
    `big: ${big.tensors} tensors, ${(big.stateBytes / 2 ** 30).toFixed(1)} GiB of state in ${big.memories} memories, ` +
      `${big.threads} threads: ${big.gelemPerS.toFixed(3)} Gelem/s (${big.gbps.toFixed(1)} GB/s), ` +
      `spot check worst rel err ${big.worstRelErr.toExponential(2)} ${big.ok ? 'OK' : 'FAIL'}`,
  );
} else {
  console.log(
    'elements  threads  wasm Gel/s  +f16 Gel/s  checked Gel/s  JS Gel/s   wasm GB/s  +f16 GB/s  copy GB/s  % of copy',
  );
  for (const r of rows)
    console.log(
      `${String(r.elements).padStart(8)} ${String(r.threads).padStart(8)} ${f(r.wasmUncheckedGelemPerS, 3)}    ${f(r.wasmF16pGelemPerS, 3)}    ` +
        `${f(r.wasmCheckedGelemPerS, 3)}     ${f(r.jsGelemPerS, 3)}  ${f(r.wasmUncheckedGBps, 1)}   ${f(r.wasmF16pGBps, 1)}   ` +
        `${f(r.copyGBps, 1)}   ${f((100 * r.wasmUncheckedGBps) / r.copyGBps, 0)}`,
    );
}
if (big && !big.ok) process.exitCode = 1;
