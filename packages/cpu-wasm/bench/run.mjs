// cpu-wasm benchmark: AdamW elements/s at 1, 2, 4, ... N threads for 1M, 16M and 64M elements, in the
// forms lsp-offload steps: dense fp32 params (unchecked, as torch does, and checked, the default that
// tests gradients before writing), dense params with the fused fp16 copy (fp16 weights on the GPU), and
// step-only subspace state with fp16 step output (lsp's d x d states); beside PyTorch's fused CPU AdamW
// at the same sizes and thread counts (bench/torch_adamw.py, run first when python3 has torch), a
// plain-JS AdamW and a WASM stream copy (the memory-bandwidth roofline) in the same run.
//
// Usage: node bench/run.mjs [outDir] [--sizes 1M,16M,64M] [--threads 1,2,4] [--min-ms 400]
//                           [--dist <built package dir>] [--label name] [--no-torch] [--big[=GiB]]
//   (also: npx nx run @lsp-offload/cpu-wasm:bench -- <outDir> [flags])
// --dist benchmarks another build of this package (e.g. an earlier version) with the same code.
// Writes <outDir>/cpu-wasm-bench[-label].json (or cpu-wasm-bench-big.json with --big) when outDir is given.
// --big: more than 8 GiB of optimizer state (default 9 GiB) over several 4 GiB memories, at N threads,
// with a spot check of the results against a float64 reference. Meant for the 128 GB GPU host.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

const USAGE =
  'usage: node bench/run.mjs [outDir] [--sizes 1M,16M,64M] [--threads 1,2,4] [--min-ms 400] [--dist dir] [--label name] [--no-torch] [--big[=GiB]]';
const here = dirname(fileURLToPath(import.meta.url));
const cores = availableParallelism();
const opts = {
  sizes: '1M,16M,64M',
  threads: undefined,
  big: undefined,
  outDir: undefined,
  'min-ms': '400',
  dist: join(here, '..', 'dist'),
  label: '',
  torch: true,
};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const eq = a.indexOf('=');
  const [key, value] = eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
  if (['--sizes', '--threads', '--min-ms', '--dist', '--label'].includes(key))
    opts[key.slice(2)] = value ?? process.argv[++i];
  else if (key === '--big') opts.big = Number.parseFloat(value ?? '9');
  else if (key === '--no-torch') opts.torch = false;
  else if (a.startsWith('--') || opts.outDir !== undefined) throw new Error(`${USAGE}\n(unexpected ${a})`);
  else opts.outDir = a;
}
const { AdamW, KernelPool, OP, PieceWriter, createSharedMemory } = await import(
  pathToFileURL(join(resolve(opts.dist), 'index.js')).href
);
const outDir = opts.outDir;
const minMs = Number(opts['min-ms']);
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
  Number.isNaN(opts.big) ||
  !(minMs > 0)
)
  throw new Error(USAGE);
const BYTES_PER_ELEMENT = 28; // AdamW reads p, g, m, v (16 bytes) and writes p, m, v (12)
const BYTES_PER_ELEMENT_F16P = 30; // ... and writes the fp16 copy of p (2)
const BYTES_PER_ELEMENT_STEP_F16O = 22; // step-only: reads g, m, v (12), writes m, v (8), an fp16 step (2)
const CHECK_BYTES_PER_ELEMENT = 4; // the checked step reads each fp32 gradient once more
const HP = { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 };

/** Median time of `fn` over at least `minReps` runs and about `minMs` milliseconds, after a warm-up. */
async function time(fn, minReps = 3, ms = minMs) {
  await fn();
  const times = [];
  const start = performance.now();
  while (times.length < minReps || (performance.now() - start < ms && times.length < 50)) {
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

/** PyTorch's fused CPU AdamW at the same sizes and threads, from its JSON (run first if missing). */
function torchRows() {
  if (!outDir || !opts.torch) return undefined;
  const file = join(outDir, 'torch-adamw-bench.json');
  if (!existsSync(file)) {
    const probe = spawnSync('python3', ['-c', 'import torch'], { stdio: 'ignore' });
    if (probe.status !== 0) return undefined;
    const args = [
      join(here, 'torch_adamw.py'),
      outDir,
      '--sizes',
      opts.sizes,
      '--threads',
      threadCounts.join(','),
    ];
    const r = spawnSync('python3', [...args, '--min-ms', String(minMs)], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (r.status !== 0) console.error(`(torch_adamw.py failed with ${r.status}; our numbers only)`);
  }
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
}
const torch = opts.big === undefined ? torchRows() : undefined;
const torchAt = (n, t) => torch?.rows.find((r) => r.elements === n && r.threads === t);

if (opts.big === undefined) {
  for (const n of sizes) {
    const label = n >= 2 ** 20 ? `${n / 2 ** 20}M` : `${n}`;
    const p = new Float32Array(n);
    const g = new Float32Array(n);
    fillPattern(p, 1);
    fillPattern(g, 2);
    let jsMs;
    if (n <= 16 * 2 ** 20) {
      console.error(`size ${label}: plain JS ...`);
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      let tjs = 0;
      jsMs = await time(() => jsAdamw(p, g, m, v, ++tjs), 2, 300);
    }
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
    opt.addStepOnly('s', n, { outDtype: 'f16' }); // lsp's subspace state, fp16 steps to the GPU
    opt.grad('s').set(g);
    for (const threads of threadCounts) {
      console.error(`size ${label}: ${threads} thread(s) ...`);
      const step = (names, nonFinite) => time(() => opt.step({ names, threads, nonFinite }));
      const unchecked = await step(['w'], 'propagate');
      const checked = await step(['w'], undefined);
      const f16p = await step(['w16'], undefined);
      const stepOnly = await step(['s'], 'propagate');
      const stepOnlyChecked = await step(['s'], undefined);
      const copy = await time(() => copyStep(n, threads));
      const t = torchAt(n, threads);
      const rate = (ms) => n / ms / 1e6;
      rows.push({
        elements: n,
        threads,
        denseUncheckedMs: unchecked,
        denseCheckedMs: checked,
        denseF16pCheckedMs: f16p,
        stepOnlyF16oMs: stepOnly,
        stepOnlyF16oCheckedMs: stepOnlyChecked,
        copyMs: copy,
        jsMs,
        denseUncheckedGelemPerS: rate(unchecked),
        denseCheckedGelemPerS: rate(checked),
        denseF16pCheckedGelemPerS: rate(f16p),
        stepOnlyF16oGelemPerS: rate(stepOnly),
        stepOnlyF16oCheckedGelemPerS: rate(stepOnlyChecked),
        jsGelemPerS: jsMs ? rate(jsMs) : undefined,
        torchFusedGelemPerS: t?.fusedGelemPerS,
        denseUncheckedGBps: (BYTES_PER_ELEMENT * n) / unchecked / 1e6,
        denseCheckedGBps: ((BYTES_PER_ELEMENT + CHECK_BYTES_PER_ELEMENT) * n) / checked / 1e6,
        stepOnlyF16oGBps: (BYTES_PER_ELEMENT_STEP_F16O * n) / stepOnly / 1e6,
        copyGBps: (8 * n) / copy / 1e6,
        torchCopyGBps: t?.copyGBps,
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
  const suffix = opts.label ? `-${opts.label}` : '';
  const file = join(outDir, big ? `cpu-wasm-bench-big${suffix}.json` : `cpu-wasm-bench${suffix}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        date,
        machine,
        label: opts.label || undefined,
        dist: resolve(opts.dist),
        bytesPerElement: BYTES_PER_ELEMENT,
        bytesPerElementF16p: BYTES_PER_ELEMENT_F16P,
        bytesPerElementStepOnlyF16o: BYTES_PER_ELEMENT_STEP_F16O,
        rows,
        torch: torch && { date: torch.date, machine: torch.machine },
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
  const r2 = (x) => (x === undefined ? '     -' : f(x, 2));
  const ratio = (a, b) => (a === undefined || b === undefined ? '     -' : f(a / b, 2));
  console.log(
    `G elements/s${opts.label ? ` (${opts.label})` : ''}; dense = fp32 params, step = step-only with fp16 output; ` +
      'checked = the default step (gradients tested before any write)',
  );
  console.log(
    'elements  threads  dense unchk  dense chk  +f16p chk  step unchk  step chk  torch fused  dense chk/torch  step chk/torch  JS    copy GB/s (torch copy)',
  );
  for (const r of rows)
    console.log(
      `${String(r.elements).padStart(8)} ${String(r.threads).padStart(8)} ${r2(r.denseUncheckedGelemPerS).padStart(12)} ` +
        `${r2(r.denseCheckedGelemPerS).padStart(10)} ${r2(r.denseF16pCheckedGelemPerS).padStart(10)} ` +
        `${r2(r.stepOnlyF16oGelemPerS).padStart(11)} ${r2(r.stepOnlyF16oCheckedGelemPerS).padStart(9)} ` +
        `${r2(r.torchFusedGelemPerS).padStart(12)} ${ratio(r.denseCheckedGelemPerS, r.torchFusedGelemPerS).padStart(16)} ` +
        `${ratio(r.stepOnlyF16oCheckedGelemPerS, r.torchFusedGelemPerS).padStart(15)} ${r2(r.jsGelemPerS)} ` +
        `${f(r.copyGBps, 1)} (${r.torchCopyGBps === undefined ? '-' : r.torchCopyGBps.toFixed(1)})`,
    );
}
if (big && !big.ok) process.exitCode = 1;
