// matmul: every layout x dtype on the simple and tiled paths against the float64 reference, on odd
// shapes (not multiples of the tile) with poisoned outputs; batched, strided, broadcast and accumulating
// calls; gradients of the backward layouts by finite differences; planning and error messages.
// Bigger tiles (the GPU defaults) are in matmul-tiles.test.ts; the subgroup-matrix path needs a GPU
// that has it and is checked by bench/matmul-check.mjs.
import { describe, expect, it } from 'vitest';
import { GpuRuntime, matmul, matmulStrided, subgroupMatrixSupport } from '../src/index.js';
import { matmulPlan, matmulReference } from '../src/reference.js';
import { tiledSharedBytes } from '../src/kernels/matmul.wgsl.js';
import {
  checkMatmul,
  describeCase,
  isAligned,
  LAYOUTS,
  type Float,
  type MatmulCase,
} from './matmul-cases.js';
import { makeRng, randn, useGpu } from './harness.js';

const gpu = useGpu();

describe('matmulReference', () => {
  it('computes a 2x2 product in every layout', () => {
    // A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]]: A.B = [[19, 22], [43, 50]]
    const a = [1, 2, 3, 4];
    const b = [5, 6, 7, 8];
    const c = [0, 0, 0, 0];
    const args = { m: 2, n: 2, k: 2, a, b, c };
    expect(Array.from(matmulReference(args))).toEqual([19, 22, 43, 50]);
    // A^T.B = [[1, 3], [2, 4]].B = [[26, 30], [38, 44]]
    expect(Array.from(matmulReference({ ...args, transA: true }))).toEqual([26, 30, 38, 44]);
    // A.B^T = A.[[5, 7], [6, 8]] = [[17, 23], [39, 53]]
    expect(Array.from(matmulReference({ ...args, transB: true }))).toEqual([17, 23, 39, 53]);
    // alpha/beta, and beta = 0 ignores a NaN C
    expect(Array.from(matmulReference({ ...args, c: [1, 1, 1, 1], alpha: 2, beta: -1 }))).toEqual([
      37, 43, 85, 99,
    ]);
    expect(Array.from(matmulReference({ ...args, c: [NaN, NaN, NaN, NaN] }))).toEqual([19, 22, 43, 50]);
  });
});

// (A, B, C) storage types: all f32; f16 operands into f32 (training's f32 accumulation of f16 weights'
// products); f16 everywhere; and a mixed pair.
const SIMPLE_TYPES: [Float, Float, Float][] = [
  ['f32', 'f32', 'f32'],
  ['f16', 'f16', 'f16'],
  ['f16', 'f32', 'f32'],
];
const ODD_SHAPES: [number, number, number][] = [
  [1, 17, 33],
  [3, 65, 17],
  [33, 1, 127],
  [17, 33, 3],
];

describe('simple path', () => {
  let s = 0;
  for (const layout of LAYOUTS) {
    for (const [aType, bType, cType] of SIMPLE_TYPES) {
      const [m, n, k] = ODD_SHAPES[s++ % ODD_SHAPES.length]!;
      const cs: MatmulCase = { m, n, k, ...layout, aType, bType, cType, path: 'simple' };
      it(describeCase(cs), async () => {
        const { plan } = await checkMatmul(gpu(), cs);
        expect(plan.path).toBe('simple');
      });
    }
  }
  it('alpha and a general beta, batched with padded rows', async () => {
    await checkMatmul(gpu(), {
      m: 5,
      n: 7,
      k: 9,
      batch: 2,
      alpha: -1.5,
      beta: 0.5,
      padA: 1,
      padB: 2,
      padC: 3,
      path: 'simple',
    });
  });
});

// One case per layout on the adapter's automatic tile (f16 operands: matmul-tiles.test.ts). Shapes
// cross tile edges in M, N and K (llvmpipe gets 32 x 32 x 8 tiles); the "aligned" ones (contiguous
// extents % 4 == 0) take the vec4 global loads, the others the scalar ones.
const TILED_F32_CASES: MatmulCase[] = [
  { m: 68, n: 36, k: 44, ...LAYOUTS[0] },
  { m: 36, n: 68, k: 20, ...LAYOUTS[1] },
  { m: 44, n: 40, k: 28, ...LAYOUTS[2] },
  { m: 65, n: 33, k: 17, ...LAYOUTS[3] },
];

describe('tiled path (automatic tile for this adapter)', () => {
  for (const cs of TILED_F32_CASES) {
    it(describeCase(cs), async () => {
      const { plan } = await checkMatmul(gpu(), { ...cs, path: 'tiled' });
      expect(plan.path).toBe('tiled');
      expect(plan.key.endsWith(isAligned(cs) ? '.v11' : '.v00')).toBe(true);
    });
  }

  it('batched with a broadcast B, alpha and accumulate (matmul on shaped tensors)', async () => {
    const g = gpu();
    const rng = makeRng(7);
    const [batch, m, k, n] = [3, 36, 20, 68];
    const a = randn(rng, batch * m * k);
    const b = randn(rng, k * n);
    const c = randn(rng, batch * m * n);
    const at = g.upload('x', 'f32', [batch, m, k], a);
    const bt = g.upload('w', 'f32', [k, n], b);
    const ct = g.upload('y', 'f32', [batch, m, n], c);
    const plan = matmul(g, at, bt, ct, { alpha: -0.75, accumulate: true, path: 'tiled' });
    expect(plan.workgroups[2]).toBe(batch);
    const got = await g.read(ct);
    const want = matmulReference({ m, n, k, batch, a, b, c, strideB: 0, alpha: -0.75, beta: 1 });
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    expect(worst).toBeLessThan(1e-4);
    for (const t of [at, bt, ct]) t.release();
  });

  it('per-head views of [T, heads, dim] tensors (scores = Q_h K_h^T for every head)', async () => {
    // Q, K: [T, H, D] row-major; head h is the T x D matrix at offset h * D with row stride H * D.
    const [tokens, heads, dim] = [37, 3, 12];
    const cs: MatmulCase = {
      m: tokens,
      n: tokens,
      k: dim,
      batch: heads,
      transB: true,
      path: 'tiled',
    };
    const g = gpu();
    const rng = makeRng(11);
    const q = randn(rng, tokens * heads * dim);
    const kk = randn(rng, tokens * heads * dim);
    const qt = g.upload('q', 'f32', [tokens, heads, dim], q);
    const kt = g.upload('k', 'f32', [tokens, heads, dim], kk);
    const st = g.tensor('scores', 'f32', [heads, tokens, tokens], 'workspace');
    const view = { ld: heads * dim, batchStride: dim };
    matmulStrided(g, {
      m: tokens,
      n: tokens,
      k: dim,
      batch: heads,
      transB: true,
      a: { tensor: qt, ...view },
      b: { tensor: kt, ...view },
      c: { tensor: st },
      path: 'tiled',
    });
    const got = await g.read(st);
    const want = matmulReference({
      m: tokens,
      n: tokens,
      k: dim,
      batch: heads,
      transB: true,
      a: q,
      b: kk,
      c: new Float64Array(heads * tokens * tokens),
      lda: heads * dim,
      ldb: heads * dim,
      strideA: dim,
      strideB: dim,
    });
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    expect(worst, describeCase(cs)).toBeLessThan(1e-4);
    for (const t of [qt, kt, st]) t.release();
  });
});

describe('backward layouts against finite differences of the forward', () => {
  // L(A, B) = sum(G o (A.B)). dL/dA = G.B^T (the A.B^T layout), dL/dB = A^T.G (the A^T.B layout).
  it('dA = G.B^T and dB = A^T.G match central differences of L', async () => {
    const g = gpu();
    const [m, k, n] = [4, 8, 12];
    const rng = makeRng(5);
    const a = randn(rng, m * k);
    const b = randn(rng, k * n);
    const grad = randn(rng, m * n);
    const loss = (av: ArrayLike<number>, bv: ArrayLike<number>): number => {
      const y = matmulReference({ m, n, k, a: av, b: bv, c: new Float64Array(m * n) });
      let s = 0;
      for (let i = 0; i < y.length; i++) s += grad[i]! * y[i]!;
      return s;
    };
    const at = g.upload('a', 'f32', [m, k], a);
    const bt = g.upload('b', 'f32', [k, n], b);
    const gt = g.upload('dy', 'f32', [m, n], grad);
    const da = g.tensor('da', 'f32', [m, k], 'workspace');
    const db = g.tensor('db', 'f32', [k, n], 'workspace');
    matmul(g, gt, bt, da, { transB: true, label: 'dA' });
    matmul(g, at, gt, db, { transA: true, label: 'dB' });
    const [gotA, gotB] = [await g.read(da), await g.read(db)];
    const h = 1e-3;
    const fd = (arr: Float32Array, which: 'a' | 'b'): Float64Array => {
      const out = new Float64Array(arr.length);
      const x = Float64Array.from(arr);
      for (let i = 0; i < x.length; i++) {
        const keep = x[i]!;
        x[i] = keep + h;
        const up = which === 'a' ? loss(x, b) : loss(a, x);
        x[i] = keep - h;
        const down = which === 'a' ? loss(x, b) : loss(a, x);
        x[i] = keep;
        out[i] = (up - down) / (2 * h);
      }
      return out;
    };
    const check = (got: ArrayLike<number>, want: Float64Array, what: string) => {
      for (let i = 0; i < want.length; i++)
        expect(Math.abs(got[i]! - want[i]!), `${what}[${i}]`).toBeLessThan(1e-4 * (1 + Math.abs(want[i]!)));
    };
    check(gotA, fd(a, 'a'), 'dA');
    check(gotB, fd(b, 'b'), 'dB');
    for (const t of [at, bt, gt, da, db]) t.release();
  });
});

describe('planning and errors', () => {
  it('picks tiles within the adapter limits', () => {
    const g = gpu();
    const t = g.tensor('t', 'f32', [1 << 16], 'workspace');
    const c = g.tensor('c', 'f32', [200 * 300], 'workspace');
    const plan = matmulPlan(g, {
      m: 200,
      n: 300,
      k: 50,
      a: { tensor: t },
      b: { tensor: t },
      c: { tensor: c },
    });
    expect(plan.path).toBe('tiled');
    const tile = plan.tile!;
    expect(tiledSharedBytes(tile)).toBeLessThanOrEqual(g.device.limits.maxComputeWorkgroupStorageSize);
    expect((tile.bm / tile.tm) * (tile.bn / tile.tn)).toBeLessThanOrEqual(
      g.device.limits.maxComputeInvocationsPerWorkgroup,
    );
    expect(plan.workgroups).toEqual([Math.ceil(300 / tile.bn), Math.ceil(200 / tile.bm), 1]);
    t.release();
    c.release();
  });

  it('uses tensor cores only where the adapter has them, and says why not', () => {
    const g = gpu();
    const t = g.tensor('h', 'f16', [64 * 64], 'workspace');
    const c = g.tensor('c', 'f32', [64 * 64], 'workspace');
    const args = { m: 64, n: 64, k: 64, a: { tensor: t }, b: { tensor: t }, c: { tensor: c } };
    const support = subgroupMatrixSupport(g);
    if (typeof support === 'string') {
      expect(() => matmulPlan(g, { ...args, path: 'subgroup-matrix' })).toThrow(
        /subgroup-matrix path is unavailable/,
      );
      expect(matmulPlan(g, args).path).toBe('tiled');
    } else {
      expect(matmulPlan(g, args).path).toBe('subgroup-matrix');
    }
    t.release();
    c.release();
  });

  it('names the tensors in shape, dtype, range and aliasing errors', () => {
    const g = gpu();
    const x = g.tensor('x', 'f32', [8, 16], 'workspace');
    const w = g.tensor('w', 'f32', [12, 4], 'workspace');
    const y = g.tensor('y', 'f32', [8, 4], 'workspace');
    const idx = g.tensor('ids', 'i32', [8, 12], 'workspace');
    expect(() => matmul(g, x, w, y)).toThrow(
      /inner dimensions differ: A 'x' \[8, 16\] has K=16, B 'w' \[12, 4\] has K=12/,
    );
    expect(() => matmul(g, x, w, y, { transB: true })).toThrow(/B 'w' \[12, 4\] \(transposed\) has K=4/);
    expect(() => matmul(g, idx, w, y)).toThrow(/A 'ids' is i32; matmul takes f32 or f16 tensors/);
    expect(() =>
      matmulStrided(g, { m: 8, n: 4, k: 16, a: { tensor: x, ld: 20 }, b: { tensor: w }, c: { tensor: y } }),
    ).toThrow(/A 'x' \[8, 16\] has 128 elements but .* reach element 155/);
    expect(() =>
      matmulStrided(g, { m: 8, n: 4, k: 4, a: { tensor: x, ld: 2 }, b: { tensor: w }, c: { tensor: y } }),
    ).toThrow(/ld 2 is less than its stored row length 4/);
    expect(() =>
      matmulStrided(g, { m: 4, n: 4, k: 4, a: { tensor: y }, b: { tensor: w }, c: { tensor: y } }),
    ).toThrow(/C 'y' shares its buffer with A/);
    for (const t of [x, w, y, idx]) t.release();
  });
});

describe('device without Dawn robustness (GpuRuntimeOptions.robustness = false)', () => {
  it('records the toggle and still computes the reference result', async () => {
    const g = await GpuRuntime.create({ robustness: false });
    try {
      expect(g.ctx.report.toggles).toContain('disable_robustness');
      await checkMatmul(g, { m: 17, n: 33, k: 9, transB: true, path: 'simple' });
    } finally {
      g.destroy();
    }
  });
});
