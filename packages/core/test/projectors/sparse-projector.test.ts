import { describe, expect, it } from 'vitest';
import { SparseProjector } from '../../src/index.js';
import { Rng } from '../../src/util/rng.js';

describe('SparseProjector', () => {
  it('draws r distinct in-range positions per row, reproducibly from the seed', () => {
    for (const [rows, d, r] of [
      [101, 8, 8],
      [57, 33, 1],
      [33, 64, 16],
    ] as const) {
      const p = SparseProjector.random(rows, d, r, new Rng(rows));
      p.validate();
      const q = SparseProjector.random(rows, d, r, new Rng(rows));
      expect(q.positions).toEqual(p.positions);
      expect(q.values).toEqual(p.values);
    }
  });

  it('has E[P P^T] ~ I: gaussian values with variance 1/r, rademacher exactly +-1/sqrt(r)', () => {
    const r = 4;
    const g = SparseProjector.random(2000, 64, r, new Rng(3), 'gaussian');
    let s2 = 0;
    for (const v of g.values) s2 += v * v;
    expect(s2 / g.values.length).toBeGreaterThan(0.9 / r);
    expect(s2 / g.values.length).toBeLessThan(1.1 / r);
    const rad = SparseProjector.random(50, 16, r, new Rng(3), 'rademacher');
    for (const v of rad.values) expect(Math.abs(v)).toBeCloseTo(1 / Math.sqrt(r), 7);
  });

  it('positions are spread over all columns (no collisions, roughly uniform use)', () => {
    const p = SparseProjector.random(4000, 50, 5, new Rng(9));
    const counts = new Array(50).fill(0);
    for (const c of p.positions) counts[c]++;
    const mean = (4000 * 5) / 50;
    for (const c of counts) expect(Math.abs(c - mean)).toBeLessThan(6 * Math.sqrt(mean));
  });

  it('validate() names the problem', () => {
    const p = new SparseProjector(2, 4, 2, Uint32Array.from([0, 1, 3, 3]), new Float32Array(4).fill(0.5));
    expect(() => p.validate('q_proj.left')).toThrow(/q_proj.left: row 1 repeats position 3/);
    expect(() => SparseProjector.random(3, 4, 5, new Rng(1))).toThrow(/r = 5 exceeds d = 4/);
  });

  it('a signed permutation is orthogonal: P P^T = I', () => {
    const n = 9;
    const p = SparseProjector.signedPermutation(n, new Rng(2)).toDense();
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += p[i * n + k]! * p[j * n + k]!;
        expect(s).toBe(i === j ? 1 : 0);
      }
    }
  });
});
