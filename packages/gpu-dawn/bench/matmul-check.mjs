// Device-only correctness check for the matmul paths CI (llvmpipe) cannot run on real tensor cores: the
// fast subgroup-matrix kernel (every layout, output type, the adapter's tiles, every pipeline, with and
// without buffer views, epilogues: alpha, beta, bias, f16 output; batched, strided, split-K, tiny and
// ragged shapes), the general subgroup-matrix kernel in every layout, output type, staging variant and
// tile, and the tiled kernel with the tile this GPU picks, on odd shapes against the float64 reference
// with poisoned outputs. Usage: node bench/matmul-check.mjs [outDir] [--quick] [--no-robustness].
// Exits 1 if any case fails.
//   --quick          the default (auto) tiles only, on every layout and output type
//   --no-robustness  device without Dawn's robustness transform (what the fast configuration runs)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GpuRuntime, f16Round, matmulStrided, subgroupMatrixSupport, tcProfile } from '../dist/index.js';
import { matmulReference } from '../dist/reference.js';

const args = process.argv.slice(2);
const outDir = args.find((a) => !a.startsWith('--'));
const quick = args.includes('--quick');
const robustness = !args.includes('--no-robustness');
const gpu = await GpuRuntime.create({ robustness });
const support = subgroupMatrixSupport(gpu);
console.log(`adapter: ${gpu.ctx.report.description}; subgroup matrix: ${JSON.stringify(support)}`);

/** mulberry32: reproducible inputs. */
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAN32 = 0x7fc00000;
const NAN16X2 = 0x7e007e00;

/** One case: returns {worst, key}; worst = max |got - want| / bound (bound from sum |a b| scale). */
async function runCase(cs) {
  const { m, n, k, transA = false, transB = false, aType = 'f16', bType = 'f16', cType = 'f32' } = cs;
  const batch = cs.batch ?? 1;
  const alpha = Math.fround(cs.alpha ?? 1);
  const beta = Math.fround(cs.beta ?? 0);
  const r = rng(m * 31 + n * 17 + k * 7 + batch);
  const aRows = transA ? k : m;
  const aCols = transA ? m : k;
  const bRows = transB ? n : k;
  const bCols = transB ? k : n;
  const lda = aCols + (cs.pad ?? 0);
  const ldb = bCols + (cs.pad ?? 0);
  const ldc = n + (cs.pad ?? 0);
  const off = cs.off ?? 0;
  const strideA = aRows * lda + off;
  const strideB = bRows * ldb + off;
  const strideC = m * ldc + off;
  const sizeA = off + batch * strideA;
  const sizeB = off + batch * strideB;
  const sizeC = off + batch * strideC;
  const rnd = (type, len) => {
    const a = new Float32Array(len);
    for (let i = 0; i < len; i++) a[i] = r() * 2 - 1;
    return type === 'f16' ? a.map(f16Round) : a;
  };
  const a = rnd(aType, sizeA);
  const b = rnd(bType, sizeB);
  const c0 = beta === 0 ? new Float32Array(sizeC).fill(NaN) : rnd(cType, sizeC);
  const bias = cs.bias ? rnd(cs.bias, n) : undefined;
  const biasT = bias && gpu.upload('bias', cs.bias, [n], bias);
  const at = gpu.upload('A', aType, [sizeA], a);
  const bt = gpu.upload('B', bType, [sizeB], b);
  const ct = gpu.upload('C', cType, [sizeC], c0);
  if (beta === 0) gpu.fill32(ct, cType === 'f16' ? NAN16X2 : NAN32);
  let plan;
  try {
    plan = await gpu.ctx.scoped(`matmul ${cs.name}`, () =>
      matmulStrided(gpu, {
        m,
        n,
        k,
        batch,
        transA,
        transB,
        a: { tensor: at, offset: off, ld: lda, batchStride: strideA },
        b: { tensor: bt, offset: off, ld: ldb, batchStride: strideB },
        c: { tensor: ct, offset: off, ld: ldc, batchStride: strideC },
        alpha,
        beta,
        path: cs.path ?? 'auto',
        ...(biasT && { bias: biasT }),
        ...(cs.subgroupTile && { subgroupTile: cs.subgroupTile }),
        ...(cs.tcTile && { tcTile: cs.tcTile }),
        // the 'sgmat' cases are the general kernel's (aligned ones would otherwise take the fast kernel)
        ...((cs.subgroupKernel || cs.name.startsWith('sgmat')) && {
          subgroupKernel: cs.subgroupKernel ?? 'general',
        }),
        ...(cs.splitK && { splitK: cs.splitK }),
        ...(cs.tile && { tile: cs.tile }),
      }),
    );
    const got = await gpu.read(ct);
    const common = { m, n, k, batch, transA, transB, lda, ldb, ldc, strideA, strideB, strideC };
    const offs = { offsetA: off, offsetB: off, offsetC: off };
    const want = matmulReference({ ...common, ...offs, a, b, c: c0, alpha, beta });
    if (bias) {
      for (let bi = 0; bi < batch; bi++)
        for (let i = 0; i < m; i++)
          for (let j = 0; j < n; j++) want[off + bi * strideC + i * ldc + j] += bias[j];
    }
    const abs = (x) => x.map(Math.abs);
    const scale = matmulReference({
      ...common,
      ...offs,
      a: abs(a),
      b: abs(b),
      c: abs(c0),
      alpha: Math.abs(alpha),
      beta: Math.abs(beta),
    });
    let worst = 0;
    let bad = -1;
    for (let i = 0; i < want.length; i++) {
      if (Number.isNaN(want[i])) {
        if (!Number.isNaN(got[i])) {
          worst = Infinity;
          bad = i;
        }
        continue;
      }
      const bound =
        2 ** -16 * scale[i] +
        (bias ? 2 ** -16 : 0) +
        (cType === 'f16' ? 2 ** -10 * Math.abs(want[i]) : 0) +
        1e-30;
      const ratio = Math.abs(got[i] - want[i]) / bound;
      if (!(ratio <= worst)) {
        worst = Number.isNaN(ratio) ? Infinity : ratio;
        bad = i;
      }
    }
    return {
      worst,
      key: plan.key,
      detail: worst > 1 ? `element ${bad}: got ${got[bad]}, want ${want[bad]}` : '',
    };
  } catch (e) {
    // A failed pipeline leaves an invalid dispatch in the open encoder: submit it and swallow the
    // resulting error so the next case starts clean.
    await gpu.sync('discarding a failed case').catch(() => {});
    return { worst: Infinity, key: plan?.key ?? '-', detail: String(e.message ?? e).slice(0, 2000) };
  } finally {
    at.release();
    bt.release();
    ct.release();
    biasT?.release();
  }
}

const LAYOUTS = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];
const cases = [];
const lname = (tA, tB) => `${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`;
if (typeof support !== 'string' && quick) {
  let s = 0;
  const odd = [
    [67, 35, 19],
    [257, 190, 100],
  ];
  for (const [tA, tB] of LAYOUTS) {
    for (const cType of ['f32', 'f16']) {
      const [m, n, k] = odd[s++ % odd.length];
      cases.push({
        name: `sgmat auto ${lname(tA, tB)} f16->${cType} ${m}x${n}x${k}`,
        m,
        n,
        k,
        transA: tA,
        transB: tB,
        cType,
        path: 'subgroup-matrix',
      });
      cases.push({
        name: `sgmat auto ${lname(tA, tB)} f16->${cType} 256x384x96 aligned`,
        m: 256,
        n: 384,
        k: 96,
        transA: tA,
        transB: tB,
        cType,
        path: 'subgroup-matrix',
      });
    }
  }
  cases.push({
    name: 'sgmat batched accumulate strided NT f16->f32',
    m: 77,
    n: 45,
    k: 53,
    batch: 3,
    transB: true,
    alpha: -0.5,
    beta: 1,
    pad: 3,
    off: 5,
    path: 'subgroup-matrix',
  });
  cases.push({
    name: 'sgmat batched accumulate aligned NN f16->f32',
    m: 128,
    n: 256,
    k: 64,
    batch: 2,
    alpha: 0.75,
    beta: 1,
    path: 'subgroup-matrix',
  });
} else if (typeof support !== 'string') {
  const tiles = [
    { name: 'shared2', subgroupTile: { staging: 'shared', stages: 2 } },
    { name: 'shared1', subgroupTile: { staging: 'shared', stages: 1 } },
    { name: 'sg2x4', subgroupTile: { sgm: 2, sgn: 4, fm: 4, fn: 2, staging: 'shared', stages: 2 } },
  ];
  const odd = [
    [67, 35, 19],
    [129, 131, 37],
    [257, 190, 100],
  ];
  let s = 0;
  for (const [tA, tB] of LAYOUTS) {
    for (const cType of ['f32', 'f16']) {
      for (const t of tiles) {
        const [m, n, k] = odd[s++ % odd.length];
        cases.push({
          name: `sgmat ${t.name} ${lname(tA, tB)} f16->${cType} ${m}x${n}x${k}`,
          m,
          n,
          k,
          transA: tA,
          transB: tB,
          cType,
          path: 'subgroup-matrix',
          subgroupTile: t.subgroupTile,
        });
      }
    }
    // aligned shapes: vec4 staging loads, the direct-to-C epilogue, and 'direct' fragment loads
    cases.push({
      name: `sgmat shared2 ${lname(tA, tB)} f16->f32 256x384x96 aligned`,
      m: 256,
      n: 384,
      k: 96,
      transA: tA,
      transB: tB,
      path: 'subgroup-matrix',
    });
    cases.push({
      name: `sgmat direct ${lname(tA, tB)} f16->f32 256x256x64`,
      m: 256,
      n: 256,
      k: 64,
      transA: tA,
      transB: tB,
      path: 'subgroup-matrix',
      subgroupTile: { staging: 'direct' },
    });
    cases.push({
      name: `sgmat direct2x4 ${lname(tA, tB)} f16->f16 256x256x64`,
      m: 256,
      n: 256,
      k: 64,
      transA: tA,
      transB: tB,
      cType: 'f16',
      path: 'subgroup-matrix',
      subgroupTile: { staging: 'direct', sgm: 2, sgn: 4, fm: 4, fn: 2 },
    });
  }
  cases.push({
    name: 'sgmat batched accumulate strided NT f16->f32',
    m: 77,
    n: 45,
    k: 53,
    batch: 3,
    transB: true,
    alpha: -0.5,
    beta: 1,
    pad: 3,
    off: 5,
    path: 'subgroup-matrix',
  });
  cases.push({
    name: 'sgmat batched accumulate aligned NN f16->f32',
    m: 128,
    n: 256,
    k: 64,
    batch: 2,
    alpha: 0.75,
    beta: 1,
    path: 'subgroup-matrix',
  });
  cases.push({
    name: 'sgmat big NN f16->f32 512x1024x768',
    m: 512,
    n: 1024,
    k: 768,
    path: 'subgroup-matrix',
  });
}
// The tiled kernel with this GPU's own tile choice (128 x 64 x 16, 8 x 8 on big shapes).
for (const [tA, tB] of quick ? [] : LAYOUTS) {
  cases.push({
    name: `tiled ${lname(tA, tB)} f32 515x517x131`,
    m: 515,
    n: 517,
    k: 131,
    transA: tA,
    transB: tB,
    aType: 'f32',
    bType: 'f32',
    path: 'tiled',
    tile: { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 },
  });
  cases.push({
    name: `tiled ${lname(tA, tB)} f32 515x517x131 128x64`,
    m: 515,
    n: 517,
    k: 131,
    transA: tA,
    transB: tB,
    aType: 'f32',
    bType: 'f32',
    path: 'tiled',
    tile: { bm: 128, bn: 64, bk: 16, tm: 8, tn: 8 },
  });
  cases.push({
    name: `tiled ${lname(tA, tB)} f32 512x1024x96 aligned`,
    m: 512,
    n: 1024,
    k: 96,
    transA: tA,
    transB: tB,
    aType: 'f32',
    bType: 'f32',
    path: 'tiled',
  });
  cases.push({
    name: `tiled ${lname(tA, tB)} f16->f16 300x260x70`,
    m: 300,
    n: 260,
    k: 70,
    transA: tA,
    transB: tB,
    cType: 'f16',
    path: 'tiled',
  });
}

// The fast subgroup-matrix kernel: shapes whose rows are 16-byte aligned (multiples of 8) but not of the
// tile, so every edge and the partial last K step run.
if (typeof support !== 'string') {
  const profile = tcProfile(gpu);
  const fastTiles = quick
    ? [{ name: 'auto' }]
    : [
        { name: 'auto' },
        { name: `${profile.name} large`, tcTile: profile.large },
        { name: `${profile.name} small`, tcTile: profile.small },
        { name: 'pipeline none', tcTile: { ...profile.large, pipeline: 'none' } },
        { name: 'pipeline prefetch', tcTile: { ...profile.large, pipeline: 'prefetch' } },
        { name: 'no buffer view', tcTile: { ...profile.large, bufferView: false } },
        { name: 'no swizzle', tcTile: { ...profile.large, swizzle: 0 } },
        {
          name: '8 subgroups 128x256',
          tcTile: { sgm: 2, sgn: 4, fm: 4, fn: 4, bk: 16, pipeline: 'double', bufferView: true, swizzle: 8 },
        },
      ];
  const shapesFast = [
    [264, 200, 152],
    [136, 392, 72],
    [8, 8, 8],
    [1032, 24, 40],
  ];
  let s = 0;
  for (const t of fastTiles) {
    for (const [tA, tB] of LAYOUTS) {
      for (const cType of ['f32', 'f16']) {
        const [m, n, k] = shapesFast[s++ % shapesFast.length];
        cases.push({
          name: `fast ${t.name} ${lname(tA, tB)} f16->${cType} ${m}x${n}x${k}`,
          m,
          n,
          k,
          transA: tA,
          transB: tB,
          cType,
          path: 'subgroup-matrix',
          subgroupKernel: 'fast',
          ...(t.tcTile && { tcTile: t.tcTile }),
          splitK: 1,
        });
      }
    }
  }
  const epilogues = [
    { name: 'alpha beta accumulate', alpha: -0.5, beta: 1 },
    { name: 'general beta, f16 out', beta: 0.25, cType: 'f16' },
    { name: 'bias f32', bias: 'f32' },
    { name: 'bias f16, f16 out, alpha', bias: 'f16', cType: 'f16', alpha: 2 },
    { name: 'batched strided (pad 8, offset 16)', batch: 3, pad: 8, off: 16, beta: 1 },
    { name: 'split-K 3', splitK: 3, k: 1000 },
    { name: 'split-K 4 accumulate bias f16 out', splitK: 4, k: 520, beta: 1, bias: 'f32', cType: 'f16' },
    { name: 'split-K auto (skinny)', k: 4096, m: 136, n: 136 },
  ];
  for (const [i, e] of epilogues.entries()) {
    const [tA, tB] = LAYOUTS[i % LAYOUTS.length];
    cases.push({
      m: 200,
      n: 264,
      k: 88,
      ...e,
      name: `fast ${e.name} ${lname(tA, tB)}`,
      transA: tA,
      transB: tB,
      path: 'subgroup-matrix',
      subgroupKernel: 'fast',
    });
  }
}

const results = [];
let failed = 0;
for (const cs of cases) {
  const t0 = performance.now();
  const r = await runCase(cs);
  const ok = r.worst <= 1;
  if (!ok) failed++;
  results.push({
    name: cs.name,
    key: r.key,
    worst: r.worst,
    ok,
    detail: r.detail,
    ms: performance.now() - t0,
  });
  console.log(
    `${ok ? 'ok  ' : 'FAIL'} ${cs.name.padEnd(58)} err/bound ${r.worst.toPrecision(3).padStart(9)}  ${r.key}${r.detail ? `\n     ${r.detail}` : ''}`,
  );
}
console.log(`matmul-check: ${results.length - failed} passed, ${failed} failed`);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, robustness ? 'matmul-check.json' : 'matmul-check-norobust.json'),
    JSON.stringify({ adapter: gpu.ctx.report.description, robustness, support, results }, null, 2),
  );
}
gpu.destroy();
process.exit(failed ? 1 : 0);
