import { describe, expect, it } from 'vitest';
import { csrLeft, csrRightT, uploadCsr } from '../src/index.js';
import { csrFromDense, csrLeftReference, csrRightTReference } from '../src/reference.js';
import { NAN_BITS, expectClose, makeRng, randn, useGpu } from './harness.js';

const gpu = useGpu();

function sparseDense(rng: () => number, rows: number, cols: number, density: number): Float64Array {
  const a = new Float64Array(rows * cols);
  for (let i = 0; i < a.length; i++) if (rng() < density) a[i] = rng() * 2 - 1;
  return a;
}

describe('CSR x dense', () => {
  for (const [rows, cols, C, density] of [
    [7, 5, 3, 0.4],
    [33, 19, 17, 0.1],
    [13, 29, 1, 0.0],
  ] as const) {
    it(`A.X and X.A^T for A ${rows}x${cols} (density ${density}), C=${C}`, async () => {
      const g = gpu();
      const rng = makeRng(rows * cols + C);
      const a = csrFromDense(sparseDense(rng, rows, cols, density), rows, cols);
      const at = uploadCsr(g, 'A', a);
      const x = randn(rng, cols * C);
      const xt = g.upload('X', 'f32', [cols, C], x);
      const out = g.tensor('out', 'f32', [rows, C], 'workspace');
      g.fill32(out, NAN_BITS);
      csrLeft(g, at, xt, out);
      expectClose(await g.read(out), csrLeftReference(a, x, C), { rtol: 1e-5, atol: 1e-6 }, 'A.X');
      const y = randn(rng, C * cols);
      const yt = g.upload('Y', 'f32', [C, cols], y);
      const out2 = g.tensor('out2', 'f32', [C, rows], 'workspace');
      g.fill32(out2, NAN_BITS);
      csrRightT(g, yt, at, out2);
      expectClose(await g.read(out2), csrRightTReference(y, C, a), { rtol: 1e-5, atol: 1e-6 }, 'Y.A^T');
    });
  }

  it('csrFromDense keeps exactly the non-zeros', () => {
    const a = csrFromDense([0, 2, 0, 3, 0, 0], 2, 3);
    expect(Array.from(a.rowPtr)).toEqual([0, 1, 2]);
    expect(Array.from(a.colIdx)).toEqual([1, 0]);
    expect(Array.from(a.vals)).toEqual([2, 3]);
  });
});
