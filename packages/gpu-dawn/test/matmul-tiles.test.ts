// matmul, continued: the tiled path with f16-stored operands on every layout, strided sub-matrices, and
// the bigger tiles GPUs get (128 x 128 with 8 x 8 per invocation, 64 x 64 x 16 with 4 x 4), on odd
// shapes against the float64 reference with poisoned outputs. (Split from matmul.test.ts because each
// tiled pipeline takes seconds to compile on llvmpipe.)
import { describe, expect, it } from 'vitest';
import { checkMatmul, describeCase, isAligned, LAYOUTS, type MatmulCase } from './matmul-cases.js';
import { useGpu } from './harness.js';

const gpu = useGpu();

const F16_CASES: MatmulCase[] = [
  { m: 33, n: 65, k: 45, ...LAYOUTS[0], aType: 'f16', bType: 'f16', cType: 'f32' },
  { m: 67, n: 35, k: 19, ...LAYOUTS[1], aType: 'f16', bType: 'f16', cType: 'f16' },
  { m: 36, n: 44, k: 68, ...LAYOUTS[2], aType: 'f16', bType: 'f16', cType: 'f16' },
  { m: 40, n: 76, k: 12, ...LAYOUTS[3], aType: 'f16', bType: 'f16', cType: 'f32' },
];

describe('tiled path, f16-stored operands (f32 math)', () => {
  for (const cs of F16_CASES) {
    it(describeCase(cs), async () => {
      const { plan } = await checkMatmul(gpu(), { ...cs, path: 'tiled' });
      expect(plan.path).toBe('tiled');
      expect(plan.key.endsWith(isAligned(cs) ? '.v11' : '.v00')).toBe(true);
    });
  }

  it('strided sub-matrices: offsets, padded rows, batch gaps, alpha and accumulate', async () => {
    const cs: MatmulCase = {
      ...F16_CASES[1]!,
      batch: 2,
      padA: 3,
      padB: 5,
      padC: 1,
      offA: 7,
      offB: 3,
      offC: 9,
      gapA: 11,
      gapB: 2,
      gapC: 5,
      beta: 1,
      alpha: 0.5,
      path: 'tiled',
    };
    await checkMatmul(gpu(), cs, 'strided ' + describeCase(cs));
  });
});

describe('GPU-sized tiles on odd shapes', () => {
  // BK 8 rather than the GPU's default 16 halves the unrolled code llvmpipe compiles (~10 s for 16);
  // the 8 x 8 register blocks, both row bands and both column groups are the same.
  const big = { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 };
  it('128 x 128 x 8, 8 x 8 per invocation, A.B (vec4 loads), batched with accumulate', async () => {
    const { plan } = await checkMatmul(gpu(), {
      m: 132,
      n: 260,
      k: 36,
      batch: 2,
      alpha: 1.25,
      beta: 1,
      tile: big,
      path: 'tiled',
    });
    expect(plan.tile).toEqual(big);
  });
  it('64 x 64 x 16, 4 x 4 per invocation, A.B^T (vec4 loads)', async () => {
    await checkMatmul(gpu(), {
      m: 68,
      n: 132,
      k: 20,
      transB: true,
      tile: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
      path: 'tiled',
    });
  });
});
