import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime, releaseSparseProjector } from '@lsp-offload/gpu-dawn';
import { SparseProjector } from '../../src/projectors/sparse-projector.js';
import {
  reconstructionError,
  reconstructionErrorGradient,
} from '../../src/projectors/reconstruction-error.js';
import {
  reconstructionErrorGradientReference,
  reconstructionErrorReference,
} from '../../src/projectors/reconstruction-reference.js';
import { Rng } from '../../src/util/rng.js';
import { maxRelativeError, randomGradient } from './helpers.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

// [rows, cols, d, r]: odd sizes, r = 1, r = d, rows < d
const SHAPES = [
  [13, 9, 5, 2],
  [17, 11, 6, 1],
  [7, 12, 4, 4],
  [5, 8, 7, 3],
] as const;

/** Central difference of the float64 reference e in one value of `p` (the step actually taken in f32). */
function finiteDifference(
  g: Float64Array,
  rows: number,
  cols: number,
  l: SparseProjector,
  r: SparseProjector,
  p: SparseProjector,
  entry: number,
): number {
  const v = p.values[entry]!;
  p.values[entry] = v + 1e-3;
  const plus = p.values[entry]!;
  const ePlus = reconstructionErrorReference(g, rows, cols, l, r);
  p.values[entry] = v - 1e-3;
  const minus = p.values[entry]!;
  const eMinus = reconstructionErrorReference(g, rows, cols, l, r);
  p.values[entry] = v;
  return (ePlus - eMinus) / (plus - minus);
}

describe('reconstruction error of a projector pair', () => {
  it('the reference is 0 for exact projectors and matches ||G - L L^T G R R^T|| / ||G|| densely', () => {
    const rng = new Rng(3);
    const n = 9;
    const g = randomGradient(rng, n, n);
    const perm = SparseProjector.signedPermutation(n, rng);
    expect(
      reconstructionErrorReference(g, n, n, perm, SparseProjector.signedPermutation(n, rng)),
    ).toBeLessThan(1e-12);
    // L = 0 reconstructs nothing: e = 1
    const zero = new SparseProjector(n, 3, 1, new Uint32Array(n), new Float32Array(n));
    expect(reconstructionErrorReference(g, n, n, zero, SparseProjector.random(n, 3, 2, rng))).toBeCloseTo(
      1,
      12,
    );
  });

  for (const [rows, cols, d, r] of SHAPES) {
    it(`the closed-form gradient equals finite differences of e (${rows}x${cols}, d=${d}, r=${r})`, () => {
      const rng = new Rng(rows * 31 + cols);
      const g = randomGradient(rng, rows, cols);
      const l = SparseProjector.random(rows, d, r, rng);
      const rp = SparseProjector.random(cols, d, r, rng);
      const want = reconstructionErrorGradientReference(g, rows, cols, l, rp);
      expect(want.error).toBeCloseTo(reconstructionErrorReference(g, rows, cols, l, rp), 12);
      for (const [p, grad] of [
        [l, want.left],
        [rp, want.right],
      ] as const) {
        let scale = 0;
        for (const x of grad) scale = Math.max(scale, Math.abs(x));
        for (let e = 0; e < p.values.length; e++) {
          const fd = finiteDifference(g, rows, cols, l, rp, p, e);
          expect(Math.abs(fd - grad[e]!)).toBeLessThan(1e-4 * scale);
        }
      }
    });

    it(`GPU e and gradient equal the float64 reference (${rows}x${cols}, d=${d}, r=${r})`, async () => {
      const rng = new Rng(rows * 7 + d);
      const g = randomGradient(rng, rows, cols);
      const l = SparseProjector.random(rows, d, r, rng);
      const rp = SparseProjector.random(cols, d, r, rng);
      const want = reconstructionErrorGradientReference(g, rows, cols, l, rp);
      const gt = gpu.upload('G', 'f32', [rows, cols], g);
      const [lg, rg] = [l.toGpu(gpu, 'L'), rp.toGpu(gpu, 'R')];
      expect(await reconstructionError(gpu, gt, lg, rg)).toBeCloseTo(want.error, 5);
      const got = await reconstructionErrorGradient(gpu, gt, lg, rg);
      expect(got.error).toBeCloseTo(want.error, 5);
      expect(maxRelativeError(got.left, want.left)).toBeLessThan(1e-4);
      expect(maxRelativeError(got.right, want.right)).toBeLessThan(1e-4);
      releaseSparseProjector(lg);
      releaseSparseProjector(rg);
      gt.release();
    });
  }
});
