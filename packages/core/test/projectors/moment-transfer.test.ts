import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  MomentTransfer,
  SparseProjector,
  projectorOverlap,
  transferMomentsReference,
  zeroNonFinite,
} from '../../src/index.js';
import { Rng } from '../../src/util/rng.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

function randomMoments(rng: Rng, d: number): { m: Float32Array; v: Float32Array } {
  const m = Float32Array.from({ length: d * d }, () => rng.normal());
  const v = Float32Array.from({ length: d * d }, () => rng.next() * 2);
  return { m, v };
}

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (scale || 1));
  return worst;
}

describe('moment transfer into a refitted subspace', () => {
  it('projectorOverlap equals the dense A^T B', () => {
    const rng = new Rng(1);
    const a = SparseProjector.random(23, 7, 3, rng);
    const b = SparseProjector.random(23, 9, 2, rng);
    const o = projectorOverlap(a, b);
    const da = a.toDense();
    const db = b.toDense();
    for (let i = 0; i < 7; i++) {
      for (let j = 0; j < 9; j++) {
        let want = 0;
        for (let l = 0; l < 23; l++) want += da[l * 7 + i]! * db[l * 9 + j]!;
        let got = 0;
        for (let e = o.rowPtr[i]!; e < o.rowPtr[i + 1]!; e++) if (o.colIdx[e] === j) got = o.vals[e]!;
        expect(got).toBeCloseTo(want, 12);
      }
    }
  });

  for (const [n, m, d, r] of [
    [17, 13, 5, 2],
    [41, 29, 11, 4],
  ] as const) {
    it(`GPU transfer equals the dense formula (n=${n}, m=${m}, d=${d}, r=${r})`, async () => {
      const rng = new Rng(n * m);
      const [l0, l1] = [SparseProjector.random(n, d, r, rng), SparseProjector.random(n, d, r, rng)];
      const [r0, r1] = [SparseProjector.random(m, d, r, rng), SparseProjector.random(m, d, r, rng)];
      const { m: mom, v } = randomMoments(rng, d);
      const want = transferMomentsReference(mom, v, l0, l1, r0, r1);
      const mt = gpu.upload('m', 'f32', [d, d], mom);
      const vt = gpu.upload('v', 'f32', [d, d], v);
      const transfer = new MomentTransfer(gpu, l0, l1, r0, r1);
      transfer.apply(mt, vt);
      const gotM = (await gpu.read(mt)) as Float32Array;
      const gotV = (await gpu.read(vt)) as Float32Array;
      zeroNonFinite(gotM);
      expect(maxRelErr(gotM, want.m)).toBeLessThan(1e-5);
      expect(maxRelErr(gotV, want.v)).toBeLessThan(1e-5);
      // v stays non-negative: it is a sum of squares-weighted non-negative terms
      expect(Math.min(...gotV)).toBeGreaterThanOrEqual(0);
      transfer.release();
    });
  }

  it('exact projectors (signed permutations, d = m = n) with P1 = P0 leave the moments unchanged', async () => {
    const rng = new Rng(7);
    const d = 19;
    const l = SparseProjector.signedPermutation(d, rng);
    const r = SparseProjector.signedPermutation(d, rng);
    const { m: mom, v } = randomMoments(rng, d);
    const mt = gpu.upload('m', 'f32', [d, d], mom);
    const vt = gpu.upload('v', 'f32', [d, d], v);
    const transfer = new MomentTransfer(gpu, l, l, r, r);
    transfer.apply(mt, vt);
    expect(Array.from(await gpu.read(mt))).toEqual(Array.from(mom));
    expect(Array.from(await gpu.read(vt))).toEqual(Array.from(v));
    transfer.release();
  });

  it('zeroNonFinite replaces NaN and Inf', () => {
    const a = new Float32Array([1, NaN, Infinity, -Infinity, 2]);
    expect(zeroNonFinite(a)).toBe(3);
    expect(Array.from(a)).toEqual([1, 0, 0, 0, 2]);
  });
});
