// The subgroup-matrix (tensor-core) matmul kernels on emulated subgroup matrices: the fast kernel in every
// layout, pipeline and tile-store variant with its epilogues (alpha, beta, bias, f16 output), strided and
// batched views, split-K; the general kernel on an unaligned layout; the plan's choices and errors; and
// the same f16 calls on the tiled path (what adapters without subgroup matrices run). Against the float64
// reference with NaN-poisoned outputs. Real tensor cores are checked by bench/matmul-check.mjs on a GPU.
// Each emulated pipeline costs 10-40 s of llvmpipe compilation on a cold shader cache, so the cases share
// few pipelines (one per layout/variant) and combine features.
import { describe, expect, it } from 'vitest';
import { type TcTileConfig } from '../src/index.js';
import { matmulPlan } from '../src/reference.js';
import { checkMatmul, describeCase, type MatmulCase } from './matmul-cases.js';
import { useGpu } from './harness.js';

const gpu = useGpu();

/** 32 x 32 output tiles of 2 x 2 subgroups with one fragment each: small enough for llvmpipe. */
const TILE: TcTileConfig = {
  sgm: 2,
  sgn: 2,
  fm: 1,
  fn: 1,
  bk: 16,
  pipeline: 'double',
  bufferView: true,
  swizzle: 2,
};
const fast = (tile: Partial<TcTileConfig> = {}, splitK = 1) => ({
  emulateSubgroupMatrix: true,
  subgroupKernel: 'fast' as const,
  tcTile: { ...TILE, ...tile },
  splitK,
});
const f16 = { aType: 'f16', bType: 'f16' } as const;

describe('fast subgroup-matrix kernel (emulated)', () => {
  // Shapes are multiples of 8 (16-byte rows) but not of the 32 x 32 tile or of BK, so edge tiles, clamped
  // rows/columns and the partial last K step all run.
  const cases: [string, MatmulCase][] = [
    ['A.B, double-buffered, 16-byte stores through a buffer view', { m: 40, n: 56, k: 72 }],
    [
      'A^T.B, f16 output with an f16 bias, alpha, without buffer views',
      {
        m: 56,
        n: 40,
        k: 24,
        transA: true,
        cType: 'f16',
        bias: 'f16',
        alpha: 0.5,
        choice: fast({ bufferView: false }),
      },
    ],
    [
      'A.B^T, prefetch pipeline, accumulate into C (beta 1)',
      { m: 24, n: 72, k: 40, transB: true, beta: 1, alpha: -1.5, choice: fast({ pipeline: 'prefetch' }) },
    ],
    [
      'A^T.B^T, single stage',
      { m: 48, n: 40, k: 56, transA: true, transB: true, choice: fast({ pipeline: 'none' }) },
    ],
  ];
  for (const [name, c] of cases) {
    it(`${name}: ${describeCase({ ...c, ...f16 })}`, async () => {
      const { plan } = await checkMatmul(gpu(), { ...f16, choice: fast(), ...c, path: 'subgroup-matrix' });
      expect(plan.path).toBe('subgroup-matrix');
      expect(plan.tcTile).toBeDefined();
      expect(plan.emulated).toBe(true);
    }, 600_000);
  }

  it('batched, strided views (rows padded by 8, offsets of 8 halves), general beta', async () => {
    await checkMatmul(gpu(), {
      ...f16,
      m: 40,
      n: 56,
      k: 72,
      batch: 3,
      padA: 8,
      padB: 16,
      padC: 3,
      offA: 8,
      offB: 16,
      offC: 5,
      gapA: 8,
      gapB: 24,
      gapC: 7,
      beta: 0.75,
      path: 'subgroup-matrix',
      choice: fast(),
    });
  });

  it('split-K: partial sums per K range, summed in order with alpha, beta and an f32 bias', async () => {
    const { plan } = await checkMatmul(gpu(), {
      ...f16,
      m: 24,
      n: 72,
      k: 136,
      transB: true,
      alpha: 2,
      beta: 1,
      bias: 'f32',
      path: 'subgroup-matrix',
      choice: fast({ pipeline: 'prefetch' }, 3),
    });
    expect(plan.splitK).toBe(3);
    expect(plan.kChunk).toBe(48); // 136 / 3 rounded up to BK 16
  });
});

describe('general subgroup-matrix kernel (emulated)', () => {
  it('unaligned layout (odd K): the general kernel, f16 output with an f32 bias', async () => {
    const { plan } = await checkMatmul(gpu(), {
      ...f16,
      m: 37,
      n: 45,
      k: 29,
      transA: true,
      cType: 'f16',
      bias: 'f32',
      path: 'subgroup-matrix',
      choice: {
        emulateSubgroupMatrix: true,
        subgroupTile: { sgm: 2, sgn: 2, fm: 1, fn: 1, bk: 16, stages: 1 },
      },
    });
    expect(plan.subgroupTile).toBeDefined();
    expect(plan.tcTile).toBeUndefined();
  });
});

describe('plans', () => {
  const plan = (m: number, n: number, k: number, choice = {}, transA = false) => {
    const g = gpu();
    const a = g.tensor('a', 'f16', [m * k], 'workspace');
    const b = g.tensor('b', 'f16', [k * n], 'workspace');
    const c = g.tensor('c', 'f32', [m * n], 'workspace');
    try {
      return matmulPlan(g, {
        m,
        n,
        k,
        transA,
        a: { tensor: a },
        b: { tensor: b },
        c: { tensor: c },
        emulateSubgroupMatrix: true,
        ...choice,
      });
    } finally {
      a.release();
      b.release();
      c.release();
    }
  };
  it('aligned f16 operands take the fast kernel, unaligned ones the general kernel', () => {
    expect(plan(64, 64, 64).tcTile).toBeDefined();
    expect(plan(64, 64, 63).subgroupTile).toBeDefined();
    expect(() => plan(64, 64, 63, { subgroupKernel: 'fast' })).toThrow(/16-byte aligned/);
  });
  it('split-K by itself when the output has too few tiles for the GPU, never beyond K', () => {
    const skinny = plan(32, 32, 4096, {}, true);
    expect(skinny.splitK).toBeGreaterThan(1);
    expect(skinny.kChunk * (skinny.splitK - 1)).toBeLessThan(4096);
    expect(plan(32, 32, 4096, { splitK: 1 }, true).splitK).toBe(1);
    expect(plan(32, 32, 16, { splitK: 8 }).splitK).toBe(1); // one K step cannot be split
  });
  it('errors name the problem', () => {
    expect(() => plan(64, 64, 64, { splitK: 0 })).toThrow(/splitK must be a positive integer/);
    expect(() => plan(64, 64, 64, { tcTile: { bk: 12 } })).toThrow(/bk 12/);
  });
  it('without emulation, an adapter lacking subgroup matrices runs f16 operands on the tiled path', () => {
    const g = gpu();
    const a = g.tensor('a', 'f16', [64 * 64], 'workspace');
    const c = g.tensor('c', 'f32', [64 * 64], 'workspace');
    const p = matmulPlan(g, { m: 64, n: 64, k: 64, a: { tensor: a }, b: { tensor: a }, c: { tensor: c } });
    a.release();
    c.release();
    expect(p.path).toBe(
      g.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) ? 'subgroup-matrix' : 'tiled',
    );
  });
});

describe("tiled path with the fast path's epilogues (what CPU adapters run)", () => {
  it('f16 operands, f16 output, f16 bias, accumulate, split-K 2', async () => {
    const { plan } = await checkMatmul(gpu(), {
      ...f16,
      m: 33,
      n: 47,
      k: 70,
      transA: true,
      cType: 'f16',
      bias: 'f16',
      beta: 1,
      path: 'tiled',
      choice: { splitK: 2 },
    });
    expect(plan.path).toBe('tiled');
    expect(plan.splitK).toBe(2);
  });
  it('lsp compression S = B^T A: f16 T x d operands, f32 d x d result', async () => {
    await checkMatmul(gpu(), {
      ...f16,
      m: 19,
      n: 19,
      k: 301,
      transA: true,
      path: 'tiled',
      choice: { splitK: 3 },
    });
  });
});
