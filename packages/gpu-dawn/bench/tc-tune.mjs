// Tensor-core tuning and tables: builds every variant of the fast subgroup-matrix matmul and of the
// tensor-core flash attention, checks each against the float64 reference on odd shapes, times them on
// the shapes of bench/tc-shapes.json, and prints/writes tables beside PyTorch's numbers
// (bench/tc_torch.py, run first into the same folder). Results are written after every measurement, so
// a run cut short still leaves what it measured.
// Usage: node bench/tc-tune.mjs <outDir> --part <matmul-sweep|attention-sweep|tables> [--small]
//        [--no-robustness] [--best <matmul-sweep json>] [--budget <seconds>]
//   matmul-sweep     tile / pipeline / buffer-view / swizzle / split-K variants on five shapes
//   attention-sweep  forward mode and tiles of the three tensor-core attention kernels
//   tables           every shape of tc-shapes.json with the chosen configuration (or, with --best, the
//                    sweep's best variant) and torch side by side
//   --small          shapes divided by 16 (a CPU adapter)
//   --emulate        on an adapter without subgroup matrices, run the sweeps' tensor-core kernels on
//                    emulated ones (slow to compile; checks their logic, times mean nothing). Without it
//                    the tables time what this adapter runs (f16 on the tiled kernels).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  GpuRuntime,
  attentionBackward,
  attentionForward,
  attentionPlan,
  f16Round,
  matmulStrided,
  subgroupMatrixSupport,
} from '../dist/index.js';
import {
  attentionBackwardReference,
  attentionForwardReference,
  matmulReference,
} from '../dist/reference.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const part = opt('--part') ?? 'tables';
const small = args.includes('--small');
const robustness = !args.includes('--no-robustness');
const budgetS = Number(opt('--budget') ?? 1e9);
const outDir = args.find(
  (a, i) => !a.startsWith('--') && !['--part', '--best', '--budget'].includes(args[i - 1]),
);
const started = performance.now();
const overBudget = () => (performance.now() - started) / 1000 > budgetS;

const gpu = await GpuRuntime.create({ robustness });
const report = gpu.ctx.report;
const realSupport = subgroupMatrixSupport(gpu);
const emulate = typeof realSupport === 'string' && args.includes('--emulate');
const support = subgroupMatrixSupport(gpu, emulate);
const shapes = JSON.parse(readFileSync(join(here, 'tc-shapes.json'), 'utf8'));
const torchFile = outDir && join(outDir, 'tc_torch.json');
const torch = torchFile && existsSync(torchFile) ? JSON.parse(readFileSync(torchFile, 'utf8')) : undefined;
const date = new Date().toISOString().slice(0, 10);
const header = {
  date,
  adapter: report.description,
  vendor: report.vendor,
  architecture: report.architecture,
  robustness,
  support,
  bufferView: report.wgslLanguageFeatures.includes('buffer_view'),
  emulated: emulate,
  torch: torch ? `${torch.torch} on ${torch.device}` : null,
};
console.log(`${part}: ${JSON.stringify(header)}`);
const lines = [];
const say = (s) => {
  console.log(s);
  lines.push(s);
};
const save = (name, data) => {
  if (!outDir) return;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${name}.json`), JSON.stringify({ ...header, ...data }, null, 2));
  if (!args.includes('--json-only')) writeFileSync(join(outDir, `${name}.txt`), `${lines.join('\n')}\n`);
};
const scale = small ? 16 : 1;
const down = (x) => Math.max(8, Math.round(x / scale / 8) * 8);

// ---- helpers -------------------------------------------------------------------------------------

/** mulberry32 values in [-1, 1), rounded to f16 where asked. */
function values(n, seed, f16 = true, amp = 1) {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const x = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * amp;
    out[i] = f16 ? f16Round(x) : x;
  }
  return out;
}

const pool = new Map();
/** One reusable operand buffer per (dtype, size, role), filled once. */
function operand(dtype, elements, role) {
  const key = `${dtype}:${elements}:${role}`;
  let t = pool.get(key);
  if (!t) {
    t = gpu.upload(role, dtype, [elements], values(elements, elements % 9973, dtype === 'f16', 0.1));
    pool.set(key, t);
  }
  return t;
}
function releasePool() {
  for (const t of pool.values()) t.release();
  pool.clear();
}

/** Median ms per call over 3 batches of ~`batchMs` (after a warm-up that compiles). */
async function timeCalls(call, batchMs = 60) {
  call();
  gpu.submit();
  await gpu.sync('warm-up');
  let t0 = performance.now();
  call();
  gpu.submit();
  await gpu.sync('once');
  const once = Math.max(performance.now() - t0, 0.01);
  const reps = Math.max(3, Math.min(400, Math.ceil(batchMs / once)));
  const samples = [];
  for (let s = 0; s < 3; s++) {
    t0 = performance.now();
    // Calls recorded back to back into few command buffers, as torch's stream runs them (a submit per
    // call adds the submit's cost to every call); a submit every 16 calls releases the per-call scratch (split-K workspaces, deltas).
    for (let i = 0; i < reps; i++) {
      call();
      if (i % 16 === 15) gpu.submit();
    }
    await gpu.sync('timing');
    samples.push((performance.now() - t0) / reps);
  }
  return samples.sort((a, b) => a - b)[1];
}

async function guarded(what, fn) {
  try {
    return await gpu.ctx.scoped(what, fn);
  } catch (e) {
    await gpu.sync('discarding a failed call').catch(() => {});
    return { error: String(e.message ?? e).slice(0, 1500) };
  }
}

// ---- matmul ------------------------------------------------------------------------------------------

const tflops = (s, ms) => (2 * s.m * s.n * s.k) / ms / 1e9;

async function timeMatmul(s, aType, bType, cType, choice) {
  const a = operand(aType, s.m * s.k, 'A');
  const b = operand(bType, s.k * s.n, 'B');
  const c = operand(cType, s.m * s.n, 'C');
  const call = () =>
    matmulStrided(gpu, {
      m: s.m,
      n: s.n,
      k: s.k,
      transA: s.transA,
      transB: s.transB,
      a: { tensor: a },
      b: { tensor: b },
      c: { tensor: c },
      ...(emulate && { emulateSubgroupMatrix: aType === 'f16' && bType === 'f16' }),
      ...choice,
    });
  const plan = await guarded(`matmul ${s.name}`, call);
  if (plan.error) return { error: plan.error };
  try {
    await gpu.sync('compile');
    const ms = await timeCalls(call);
    return { ms, tflops: tflops(s, ms), key: plan.key, splitK: plan.splitK };
  } catch (e) {
    await gpu.sync('discard').catch(() => {});
    return { error: String(e.message ?? e).slice(0, 1500) };
  }
}

/** Check one configuration against the float64 reference (alpha, beta, bias, odd tile edges). */
async function checkMatmul(cs, choice) {
  const { m, n, k, transA, transB } = cs;
  const cType = cs.cType ?? 'f32';
  const batch = cs.batch ?? 1;
  const alpha = Math.fround(cs.alpha ?? 1);
  const beta = Math.fround(cs.beta ?? 0);
  const sa = m * k;
  const sb = k * n;
  const sc = m * n;
  const a = values(batch * sa, 11 + m);
  const b = values(batch * sb, 13 + n);
  const bias = cs.bias ? values(n, 17) : undefined;
  const c0 = beta ? values(batch * sc, 19, cType === 'f16') : new Float32Array(batch * sc).fill(Number.NaN);
  const at = gpu.upload('A', 'f16', [batch * sa], a);
  const bt = gpu.upload('B', 'f16', [batch * sb], b);
  const ct = gpu.upload('C', cType, [batch * sc], c0);
  const biasT = bias && gpu.upload('bias', 'f32', [n], bias);
  if (!beta) gpu.fill32(ct, cType === 'f16' ? 0x7e007e00 : 0x7fc00000);
  const plan = await guarded('check', () =>
    matmulStrided(gpu, {
      m,
      n,
      k,
      batch,
      transA,
      transB,
      a: { tensor: at },
      b: { tensor: bt },
      c: { tensor: ct },
      alpha,
      beta,
      ...(biasT && { bias: biasT }),
      ...(emulate && { emulateSubgroupMatrix: true }),
      ...choice,
    }),
  );
  let result;
  if (plan.error) result = { ok: false, error: plan.error };
  else {
    try {
      const got = await gpu.read(ct);
      const common = { m, n, k, batch, transA, transB };
      const want = matmulReference({ ...common, a, b, c: c0, alpha, beta });
      const mag = matmulReference({
        ...common,
        a: a.map(Math.abs),
        b: b.map(Math.abs),
        c: c0.map(Math.abs),
        alpha: Math.abs(alpha),
        beta: Math.abs(beta),
      });
      let worst = 0;
      let at_ = -1;
      for (let i = 0; i < want.length; i++) {
        const w = want[i] + (bias ? bias[i % n] : 0);
        const bound =
          2 ** -16 * mag[i] +
          (bias ? 2 ** -20 * Math.abs(bias[i % n]) : 0) +
          (cType === 'f16' ? 2 ** -10 * Math.abs(w) : 0) +
          1e-30;
        const r = Math.abs(got[i] - w) / bound;
        if (!(r <= worst)) {
          worst = Number.isNaN(r) ? Infinity : r;
          at_ = i;
        }
      }
      result = {
        ok: worst <= 1,
        worst,
        key: plan.key,
        ...(worst > 1 && { detail: `element ${at_}: got ${got[at_]}` }),
      };
    } catch (e) {
      await gpu.sync('discard').catch(() => {});
      result = { ok: false, error: String(e.message ?? e).slice(0, 1500) };
    }
  }
  at.release();
  bt.release();
  ct.release();
  biasT?.release();
  return result;
}

const tc = (sgm, sgn, fm, fn, bk, pipeline, bufferView = true, swizzle = 8) => ({
  sgm,
  sgn,
  fm,
  fn,
  bk,
  pipeline,
  bufferView,
  swizzle,
});
const VARIANTS = small
  ? [
      { name: 'emu 2x2 sg 1x1 bk16 double', choice: { tcTile: tc(2, 2, 1, 1, 16, 'double') } },
      { name: 'emu 2x1 sg 1x2 bk32 prefetch', choice: { tcTile: tc(2, 1, 1, 2, 32, 'prefetch', false, 0) } },
    ]
  : [
      { name: '128x256 8sg 64x64 bk16 double', choice: { tcTile: tc(2, 4, 4, 4, 16, 'double') } },
      { name: '128x256 8sg 64x64 bk32 prefetch', choice: { tcTile: tc(2, 4, 4, 4, 32, 'prefetch') } },
      { name: '256x128 8sg 64x64 bk32 prefetch', choice: { tcTile: tc(4, 2, 4, 4, 32, 'prefetch') } },
      { name: '128x128 4sg 64x64 bk32 double', choice: { tcTile: tc(2, 2, 4, 4, 32, 'double') } },
      { name: '128x128 8sg 64x32 bk32 double', choice: { tcTile: tc(2, 4, 4, 2, 32, 'double') } },
      {
        name: '128x256 bk16 double, no buffer view',
        choice: { tcTile: tc(2, 4, 4, 4, 16, 'double', false) },
      },
      { name: '128x256 bk16 double, no swizzle', choice: { tcTile: tc(2, 4, 4, 4, 16, 'double', true, 0) } },
      { name: '128x256 bk16 single stage', choice: { tcTile: tc(2, 4, 4, 4, 16, 'none') } },
      { name: 'general kernel (before)', choice: { subgroupKernel: 'general' } },
    ];
const noCheck = args.includes('--no-check');

async function matmulSweep() {
  const byName = (n) => shapes.matmul.find((s) => s.name === n);
  const sweepShapes = [
    byName('7B fwd 4096->4096'),
    byName('7B dX 4096->11008'),
    byName('7B dW 4096->11008'),
    byName('1.3B fwd lm_head 2048->32256'),
  ].map((s) => ({ ...s, m: down(s.m), n: down(s.n), k: down(s.k) }));
  const odd = (transA, transB) => ({
    m: small ? 40 : 136,
    n: small ? 56 : 200,
    k: small ? 72 : 152,
    transA,
    transB,
  });
  const results = [];
  for (const v of VARIANTS) {
    if (overBudget()) break;
    const row = { variant: v.name, choice: v.choice, checks: [], times: [] };
    results.push(row);
    for (const [tA, tB] of noCheck
      ? []
      : [
          [false, false],
          [true, false],
          [false, true],
        ]) {
      const r = await checkMatmul(odd(tA, tB), v.choice);
      row.checks.push({ layout: `${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`, ...r });
    }
    const ok = row.checks.every((c) => c.ok);
    for (const s of ok ? sweepShapes : []) {
      const r = await timeMatmul(s, 'f16', 'f16', 'f32', { ...v.choice, splitK: 1 });
      const r16 = await timeMatmul(s, 'f16', 'f16', 'f16', { ...v.choice, splitK: 1 });
      row.times.push({ shape: s.name, ...r, f16out: r16 });
    }
    const tf = row.times.map((t) => t.tflops).filter(Boolean);
    row.geomean =
      tf.length === sweepShapes.length ? Math.exp(tf.reduce((x, y) => x + Math.log(y), 0) / tf.length) : 0;
    say(
      `${v.name.padEnd(44)} check ${ok ? 'ok  ' : 'FAIL'} ` +
        row.times
          .map((t) =>
            `${t.tflops ? t.tflops.toFixed(1) : 'err'}/${t.f16out?.tflops ? t.f16out.tflops.toFixed(1) : 'err'}`.padStart(
              12,
            ),
          )
          .join(' ') +
        `  geomean ${row.geomean.toFixed(1)}` +
        (ok ? '' : `\n    ${row.checks.find((c) => !c.ok)?.error ?? row.checks.find((c) => !c.ok)?.detail}`),
    );
    save('tc-matmul-sweep', { results });
  }
  // split-K on the skinny lsp compression product, with the best tile and the small tile
  const best = results.filter((r) => r.geomean > 0).sort((a, b) => b.geomean - a.geomean)[0];
  const lsp = ((s) => ({ ...s, m: down(s.m), n: down(s.n), k: down(s.k) }))(
    shapes.matmul.find((s) => s.table === 'lsp'),
  );
  const splits = [];
  if (best) {
    const smallTile = {
      variant: '64x128 4sg 32x64 bk32 double',
      choice: { tcTile: tc(2, 2, 2, 4, 32, 'double') },
    };
    for (const v of [best, smallTile]) {
      for (const splitK of [1, 2, 4]) {
        if (overBudget()) break;
        const r = await timeMatmul(lsp, 'f16', 'f16', 'f32', { ...v.choice, splitK });
        splits.push({ variant: v.variant, splitK, ...r });
        say(
          `lsp S ${lsp.m}x${lsp.n}x${lsp.k} ${v.variant} splitK ${splitK}: ${r.tflops?.toFixed(1) ?? r.error}`,
        );
      }
    }
    const check = await checkMatmul(
      { ...odd(true, false), k: small ? 200 : 1000 },
      { ...best.choice, splitK: 4 },
    );
    say(`split-K 4 check (TN, ${best.variant}): ${check.ok ? 'ok' : `FAIL ${check.error ?? check.detail}`}`);
    splits.push({ check });
  }
  save('tc-matmul-sweep', { results, best: best?.variant, bestChoice: best?.choice, splits });
}

// ---- attention ---------------------------------------------------------------------------------------

function attentionTensors(s, dtype, seed = 1) {
  const qs = [s.batch, s.seqLen, s.nHeads, s.headDim];
  const ks = [s.batch, s.seqLen, s.nKvHeads, s.headDim];
  const n = (x) => x.reduce((a, b) => a * b, 1);
  const host = {
    q: values(n(qs), seed, true, 2),
    k: values(n(ks), seed + 1),
    v: values(n(ks), seed + 2),
    dO: values(n(qs), seed + 3),
  };
  const t = {
    q: gpu.upload('q', dtype, qs, host.q),
    k: gpu.upload('k', dtype, ks, host.k),
    v: gpu.upload('v', dtype, ks, host.v),
    dO: gpu.upload('dO', dtype, qs, host.dO),
    o: gpu.tensor('o', dtype, qs, 'workspace'),
    lse: gpu.tensor('lse', 'f32', [s.batch, s.nHeads, s.seqLen], 'workspace'),
    delta: gpu.tensor('delta', 'f32', [s.batch, s.nHeads, s.seqLen], 'workspace'),
    dq: gpu.tensor('dq', dtype, qs, 'workspace'),
    dk: gpu.tensor('dk', dtype, ks, 'workspace'),
    dv: gpu.tensor('dv', dtype, ks, 'workspace'),
  };
  return { host, t };
}
const releaseTensors = (t) => Object.values(t).forEach((x) => x.release());

async function checkAttention(s, options) {
  const { host, t } = attentionTensors(s, 'f16', 5);
  for (const x of [t.o, t.dq, t.dk, t.dv]) gpu.fill32(x, 0x7e007e00);
  const r = await guarded('attention check', () => {
    attentionForward(gpu, t, options);
    attentionBackward(gpu, t, options);
  });
  let result;
  if (r?.error) result = { ok: false, error: r.error };
  else {
    try {
      const got = {};
      for (const name of ['o', 'lse', 'dq', 'dk', 'dv']) got[name] = await gpu.read(t[name]);
      const ref = attentionForwardReference(host.q, host.k, host.v, s);
      const grads = attentionBackwardReference(host.q, host.k, host.v, host.dO, s);
      const want = { o: ref.o, lse: ref.lse, ...grads };
      const errors = {};
      for (const [name, w] of Object.entries(want)) {
        let worst = 0;
        let mag = 0;
        for (let i = 0; i < w.length; i++) {
          mag = Math.max(mag, Math.abs(w[i]));
          const e = Math.abs(got[name][i] - w[i]);
          worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
        }
        errors[name] = worst / Math.max(mag, 1e-30);
      }
      result = { ok: Object.values(errors).every((e) => e <= 1e-2), errors };
    } catch (e) {
      await gpu.sync('discard').catch(() => {});
      result = { ok: false, error: String(e.message ?? e).slice(0, 1500) };
    }
  }
  releaseTensors(t);
  return result;
}

async function timeAttention(s, options) {
  const { t } = attentionTensors(s, 'f16');
  const fwd = () => attentionForward(gpu, t, options);
  const bwd = () => attentionBackward(gpu, t, options);
  let result;
  const r = await guarded('attention timing', () => {
    fwd();
    bwd();
  });
  if (r?.error) result = { error: r.error };
  else {
    try {
      const fwdMs = await timeCalls(fwd);
      const bwdMs = await timeCalls(bwd);
      const flops = 2 * s.batch * s.nHeads * s.seqLen * s.seqLen * s.headDim;
      result = {
        fwdMs,
        bwdMs,
        fwdBwdMs: fwdMs + bwdMs,
        fwdTflops: flops / fwdMs / 1e9,
        fwdBwdTflops: (3.5 * flops) / (fwdMs + bwdMs) / 1e9,
      };
    } catch (e) {
      await gpu.sync('discard').catch(() => {});
      result = { error: String(e.message ?? e).slice(0, 1500) };
    }
  }
  releaseTensors(t);
  return result;
}

const q = (subgroups, keysPerBlock) => ({ subgroups, keysPerBlock });
const kt = (subgroups, rowsPerBlock) => ({ subgroups, rowsPerBlock });
const ATT_VARIANTS = small
  ? [
      {
        name: 'emu online',
        options: { tc: { forwardMode: 'online', forward: q(2, 16), dq: q(2, 16), dkdv: kt(2, 16) } },
      },
      {
        name: 'emu two-pass',
        options: { tc: { forwardMode: 'two-pass', forward: q(2, 16), dq: q(2, 16), dkdv: kt(2, 16) } },
      },
    ]
  : [
      { name: 'default (two-pass f4x32 q4x32 kv2x32)', options: {} },
      { name: 'two-pass, no buffer view', options: { tc: { bufferView: false } }, noCheck: true },
      {
        name: 'two-pass f2x32 q2x32 kv4x16',
        options: { tc: { forward: q(2, 32), dq: q(2, 32), dkdv: kt(4, 16) } },
        noCheck: true,
      },
      {
        name: 'two-pass f4x32 q2x16 kv2x16',
        options: { tc: { forward: q(4, 32), dq: q(2, 16), dkdv: kt(2, 16) } },
        noCheck: true,
      },
      { name: 'tiled f16 kernels (before)', options: { path: 'tiled' }, noCheck: true },
    ];

async function attentionSweep() {
  const results = [];
  const attShapes = shapes.attention.map((s) =>
    small
      ? {
          ...s,
          batch: 1,
          seqLen: 48,
          nHeads: 4,
          nKvHeads: s.nKvHeads === s.nHeads ? 4 : 2,
          headDim: Math.min(s.headDim, 32),
        }
      : s,
  );
  for (const v of ATT_VARIANTS) {
    if (overBudget()) break;
    const opts = {
      ...v.options,
      ...(emulate && v.options.path !== 'tiled' && { emulateSubgroupMatrix: true }),
    };
    const row = { variant: v.name, options: v.options, checks: [], times: [] };
    results.push(row);
    for (const headDim of v.noCheck ? [] : small ? [16] : v.d64 ? [64] : [64, 128]) {
      const cs = { batch: 1, seqLen: small ? 37 : 77, nHeads: 6, nKvHeads: 2, headDim };
      row.checks.push({ headDim, ...(await checkAttention(cs, opts)) });
    }
    const ok = row.checks.every((c) => c.ok);
    for (const s of ok ? attShapes.filter((x) => !v.d64 || x.headDim === 64) : []) {
      row.times.push({ shape: s.name, ...(await timeAttention(s, opts)) });
    }
    say(
      `${v.name.padEnd(36)} check ${ok ? 'ok  ' : 'FAIL'} ` +
        row.times
          .map((t) => (t.fwdMs ? `${t.fwdMs.toFixed(3)}/${t.fwdBwdMs.toFixed(3)}` : 'err').padStart(16))
          .join(' ') +
        (ok ? '' : `\n    ${JSON.stringify(row.checks.find((c) => !c.ok)).slice(0, 1200)}`),
    );
    save('tc-attention-sweep', { results });
  }
}

// ---- tables ------------------------------------------------------------------------------------------

async function tables() {
  const bestFile = opt('--best');
  const sweep = bestFile && existsSync(bestFile) ? JSON.parse(readFileSync(bestFile, 'utf8')) : undefined;
  const choice = sweep?.bestChoice ?? {};
  const mm = [];
  const f = (x, w = 7, d = 1) =>
    (x === undefined || x === null ? '-' : x.toFixed(d === 1 && Math.abs(x) < 1 ? 3 : d)).padStart(w);
  say(
    `matmul TFLOP/s on ${report.description} (${date}), robustness ${robustness ? 'on' : 'off'}${sweep ? `, variant '${sweep.best}'` : ', chosen configuration'}`,
  );
  say(
    'shape                              M      N      K | f16->f16 f16->f32 torch fp16  ratio | f32 tiled torch fp32  ratio',
  );
  for (const s0 of shapes.matmul) {
    if (overBudget()) break;
    const s = { ...s0, m: down(s0.m), n: down(s0.n), k: down(s0.k) };
    const row = { ...s };
    row.f16 = await timeMatmul(s, 'f16', 'f16', 'f16', choice);
    row.f16f32 = await timeMatmul(s, 'f16', 'f16', 'f32', choice);
    if (s.table === '7b') row.f32 = await timeMatmul(s, 'f32', 'f32', 'f32', {});
    const t = torch?.matmul.find((x) => x.name === s.name);
    row.torch = t ? { fp16: t.fp16, fp32: t.fp32 } : null;
    mm.push(row);
    const ratio = (x, y) => (x && y ? (x / y).toFixed(2) : '-').padStart(6);
    say(
      `${s.name.padEnd(32)} ${String(s.m).padStart(5)} ${String(s.n).padStart(6)} ${String(s.k).padStart(6)} |` +
        ` ${f(row.f16.tflops, 8)} ${f(row.f16f32.tflops, 8)} ${f(t?.fp16, 10)} ${ratio(row.f16.tflops, t?.fp16)} |` +
        ` ${f(row.f32?.tflops, 9)} ${f(t?.fp32, 10)} ${ratio(row.f32?.tflops, t?.fp32)}` +
        (row.f16.error ? `\n    ${row.f16.error}` : ''),
    );
    save('tc-tables', { matmul: mm });
  }
  // With an attention sweep in the folder, its fastest variant that passed its checks (else the default).
  const attFile = outDir && join(outDir, 'tc-attention-sweep.json');
  const attSweep = attFile && existsSync(attFile) ? JSON.parse(readFileSync(attFile, 'utf8')) : undefined;
  const total = (r) => r.times.reduce((x, t) => x + (t.fwdBwdMs ?? Infinity), 0);
  const attBest = !bestFile
    ? undefined
    : attSweep?.results
        .filter(
          (r) =>
            r.options.path !== 'tiled' &&
            r.checks.every((c) => c.ok) &&
            r.times.length === shapes.attention.length,
        )
        .sort((a, b) => total(a) - total(b))[0];
  const attOptions = { ...(attBest?.options ?? {}), ...(emulate && { emulateSubgroupMatrix: true }) };
  const att = [];
  say(
    `\ncausal attention, f16 q/k/v/o, ms; torch SDPA flash bf16${attBest ? `; variant '${attBest.variant}'` : ''}`,
  );
  say(
    'shape                         | ours fwd  fwd+bwd  TFLOP/s | tiled fwd+bwd | torch fwd fwd+bwd | torch/ours fwd  fwd+bwd',
  );
  for (const s0 of shapes.attention) {
    if (overBudget()) break;
    const s = small
      ? {
          ...s0,
          batch: 1,
          seqLen: 64,
          nHeads: 4,
          nKvHeads: s0.nKvHeads === s0.nHeads ? 4 : 2,
          headDim: Math.min(32, s0.headDim),
        }
      : s0;
    const { t } = attentionTensors(s, 'f16');
    let plan;
    try {
      plan = attentionPlan(gpu, t.q, t.k, t.v, attOptions);
    } catch (e) {
      plan = { error: String(e.message ?? e) };
    }
    releaseTensors(t);
    const ours = await timeAttention(s, attOptions);
    const tiled = small ? {} : await timeAttention(s, { path: 'tiled' });
    const tr = torch?.attention.find((x) => x.name === s.name)?.flash_bf16;
    att.push({ ...s, plan, ours, tiled, torch: tr ?? null });
    say(
      `${s.name.padEnd(29)} | ${f(ours.fwdMs, 8, 3)} ${f(ours.fwdBwdMs, 8, 3)} ${f(ours.fwdBwdTflops, 8)} | ${f(tiled.fwdBwdMs, 13, 3)} |` +
        ` ${f(tr?.fwdMs, 9, 3)} ${f(tr?.fwdBwdMs, 7, 3)} | ${f(tr && ours.fwdMs ? tr.fwdMs / ours.fwdMs : undefined, 14, 2)} ${f(tr && ours.fwdBwdMs ? tr.fwdBwdMs / ours.fwdBwdMs : undefined, 8, 2)}` +
        (ours.error ? `\n    ${ours.error}` : ''),
    );
    save('tc-tables', { matmul: mm, attention: att });
  }
}

if (part === 'matmul-sweep') await matmulSweep();
else if (part === 'attention-sweep') await attentionSweep();
else await tables();
releasePool();
gpu.destroy();
process.exit(0);
