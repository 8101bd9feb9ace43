import { describe, expect, it } from 'vitest';
import {
  addTimesProjT,
  buildColumnIndex,
  expandRows,
  f16BitsToF32,
  f16Round,
  f32ToF16Bits,
  gatherColumns,
  gatherRowsT,
  sampledRowDots,
  syncColumnValues,
  uploadSparseProjector,
  type SparseProjectorHost,
} from '../src/index.js';
import {
  addTimesProjTReference,
  expandRowsReference,
  gatherColumnsReference,
  gatherRowsTReference,
  sampledRowDotsReference,
} from '../src/reference.js';
import { NAN_BITS, expectClose, makeRng, randn, useGpu } from './harness.js';

const gpu = useGpu();

/** r distinct positions per row (partial Fisher-Yates), N(0, 1/r) values. */
function randomProjector(rng: () => number, rows: number, d: number, r: number): SparseProjectorHost {
  const positions = new Uint32Array(rows * r);
  const perm = Array.from({ length: d }, (_, i) => i);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < r; k++) {
      const j = k + Math.floor(rng() * (d - k));
      [perm[k], perm[j]] = [perm[j]!, perm[k]!];
      positions[i * r + k] = perm[k]!;
    }
  }
  return { rows, d, r, positions, values: randn(rng, rows * r, 1 / Math.sqrt(r)) };
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

const shapes = [
  { T: 5, rows: 13, d: 7, r: 1, C: 9 },
  { T: 17, rows: 37, d: 11, r: 4, C: 5 },
  { T: 3, rows: 29, d: 19, r: 16, C: 67 },
  // several workgroups across d, and a last group of 2 tokens
  { T: 70, rows: 130, d: 67, r: 2, C: 3 },
];

describe('sparse projector kernels vs float64 references', () => {
  it('column index groups entries by column with rows ascending', () => {
    const p = randomProjector(makeRng(1), 23, 9, 3);
    const { colPtr, colEntry } = buildColumnIndex(p.positions, p.rows, p.r, p.d);
    expect(colPtr[p.d]).toBe(p.rows * p.r);
    for (let c = 0; c < p.d; c++) {
      for (let e = colPtr[c]!; e < colPtr[c + 1]!; e++) {
        expect(p.positions[colEntry[e]!]).toBe(c);
        if (e > colPtr[c]!) expect(colEntry[e]!).toBeGreaterThan(colEntry[e - 1]!);
      }
    }
    expect(() => buildColumnIndex(new Uint32Array([0, 9]), 2, 1, 9)).toThrow(
      /position 9 at entry 1 is not < d = 9/,
    );
  });

  for (const { T, rows, d, r, C } of shapes) {
    const tag = `T=${T} rows=${rows} d=${d} r=${r}`;

    it(`gatherColumns x.P (${tag})`, async () => {
      const g = gpu();
      const rng = makeRng(rows * 31 + r);
      const p = randomProjector(rng, rows, d, r);
      const x = randn(rng, T * rows);
      const pt = uploadSparseProjector(g, 'P', p);
      const xt = g.upload('x', 'f32', [T, rows], x);
      const out = g.tensor('out', 'f32', [T, d], 'workspace');
      g.fill32(out, NAN_BITS);
      gatherColumns(g, xt, pt, out);
      expectClose(await g.read(out), gatherColumnsReference(x, T, p), { rtol: 1e-5, atol: 1e-5 }, 'x.P');
    });

    it(`gatherRowsT P^T.y (${tag})`, async () => {
      const g = gpu();
      const rng = makeRng(rows * 37 + r);
      const p = randomProjector(rng, rows, d, r);
      const y = randn(rng, rows * C);
      const pt = uploadSparseProjector(g, 'P', p);
      const yt = g.upload('y', 'f32', [rows, C], y);
      const out = g.tensor('out', 'f32', [d, C], 'workspace');
      g.fill32(out, NAN_BITS);
      gatherRowsT(g, yt, pt, out);
      expectClose(await g.read(out), gatherRowsTReference(y, C, p), { rtol: 1e-5, atol: 1e-5 }, 'P^T.y');
    });

    it(`expandRows P.D (${tag})`, async () => {
      const g = gpu();
      const rng = makeRng(rows * 41 + r);
      const p = randomProjector(rng, rows, d, r);
      const dm = randn(rng, d * C);
      const pt = uploadSparseProjector(g, 'P', p);
      const dt = g.upload('D', 'f32', [d, C], dm);
      const out = g.tensor('out', 'f32', [rows, C], 'workspace');
      g.fill32(out, NAN_BITS);
      expandRows(g, dt, pt, out);
      expectClose(await g.read(out), expandRowsReference(dm, C, p), { rtol: 1e-5, atol: 1e-5 }, 'P.D');
    });

    it(`addTimesProjT W += a F.P^T into f32 weights (${tag})`, async () => {
      const g = gpu();
      const rng = makeRng(rows * 43 + r);
      const n = C;
      const p = randomProjector(rng, rows, d, r);
      const w = randn(rng, n * rows);
      const f = randn(rng, n * d);
      const pt = uploadSparseProjector(g, 'P', p);
      const wt = g.upload('W', 'f32', [n, rows], w);
      const ft = g.upload('F', 'f32', [n, d], f);
      addTimesProjT(g, wt, ft, pt, -0.37);
      expectClose(
        await g.read(wt),
        addTimesProjTReference(w, n, f, p, Math.fround(-0.37)),
        { rtol: 1e-6, atol: 1e-6 },
        'W + aFP^T',
      );
    });

    it(`sampledRowDots (U.V^T at P's positions), overwrite and accumulate (${tag})`, async () => {
      const g = gpu();
      const rng = makeRng(rows * 47 + r);
      const p = randomProjector(rng, rows, d, r);
      const u = randn(rng, rows * d);
      const v = randn(rng, d * d);
      const pt = uploadSparseProjector(g, 'P', p);
      const ut = g.upload('U', 'f32', [rows, d], u);
      const vt = g.upload('V', 'f32', [d, d], v);
      const out = g.tensor('out', 'f32', [rows * r], 'workspace');
      g.fill32(out, NAN_BITS);
      sampledRowDots(g, ut, vt, pt, out);
      const want = sampledRowDotsReference(u, v, p);
      expectClose(await g.read(out), want, { rtol: 1e-5, atol: 1e-5 }, 'sampled dots');
      sampledRowDots(g, ut, vt, pt, out, { alpha: 0.5, accumulate: true });
      expectClose(
        await g.read(out),
        want.map((x) => 1.5 * x),
        { rtol: 1e-5, atol: 1e-5 },
        'sampled dots accumulate',
      );
      // the same with U and V handed over transposed
      const ut2 = g.upload('Ut', 'f32', [d, rows], transpose(u, rows, d));
      const vt2 = g.upload('Vt', 'f32', [d, d], transpose(v, d, d));
      g.fill32(out, NAN_BITS);
      sampledRowDots(g, ut2, vt2, pt, out, { uTransposed: true, vTransposed: true, alpha: -2 });
      expectClose(
        await g.read(out),
        want.map((x) => -2 * x),
        { rtol: 1e-5, atol: 1e-5 },
        'sampled dots transposed',
      );
    });
  }

  it('syncColumnValues refreshes the column copy after values change', async () => {
    const g = gpu();
    const rng = makeRng(3);
    const p = randomProjector(rng, 31, 13, 4);
    const pt = uploadSparseProjector(g, 'P', p);
    const newValues = randn(rng, 31 * 4);
    g.write(pt.values, newValues);
    syncColumnValues(g, pt);
    const y = randn(rng, 31 * 3);
    const yt = g.upload('y', 'f32', [31, 3], y);
    const out = g.tensor('out', 'f32', [13, 3], 'workspace');
    gatherRowsT(g, yt, pt, out);
    expectClose(
      await g.read(out),
      gatherRowsTReference(y, 3, { ...p, values: newValues }),
      { rtol: 1e-5, atol: 1e-5 },
      'after sync',
    );
  });

  it('rejects mismatched shapes with the tensor named', () => {
    const g = gpu();
    const pt = uploadSparseProjector(g, 'P', randomProjector(makeRng(4), 10, 5, 2));
    const x = g.tensor('acts', 'f32', [3, 11], 'workspace');
    const out = g.tensor('out', 'f32', [3, 5], 'workspace');
    expect(() => gatherColumns(g, x, pt, out)).toThrow(
      /gatherColumns: x acts: f32\[3, 11\] must be \[T, 10\]/,
    );
    const ints = g.tensor('ids', 'i32', [3, 10], 'workspace');
    expect(() => gatherColumns(g, ints, pt, out)).toThrow(
      /gatherColumns: x ids: i32\[3, 10\] must be f32 or f16/,
    );
  });

  // lsp on f16 activations: A = X R and B = dY L gathered straight from f16 tensors into f16 operands
  // of the tensor-core S = B^T A (f32 sums, one rounding to f16 at the end).
  for (const [xType, outType] of [
    ['f16', 'f16'],
    ['f16', 'f32'],
    ['f32', 'f16'],
  ] as const) {
    it(`gatherColumns and gatherRowsT with ${xType} input, ${outType} output`, async () => {
      const g = gpu();
      const { T, rows, d, r, C } = shapes[3]!;
      const rng = makeRng(rows * 53 + r + xType.length);
      const p = randomProjector(rng, rows, d, r);
      const round = (a: Float32Array) => (xType === 'f16' ? a.map(f16Round) : a);
      const x = round(randn(rng, T * rows));
      const y = round(randn(rng, rows * C));
      const pt = uploadSparseProjector(g, 'P', p);
      const xt = g.upload('x', xType, [T, rows], x);
      const yt = g.upload('y', xType, [rows, C], y);
      const out = g.tensor('out', outType, [T, d], 'workspace');
      const outT = g.tensor('outT', outType, [d, C], 'workspace');
      for (const t of [out, outT]) g.fill32(t, outType === 'f16' ? 0x7e007e00 : NAN_BITS);
      gatherColumns(g, xt, pt, out);
      gatherRowsT(g, yt, pt, outT);
      // f32 sums, then (f16 output) one rounding: half an f16 ulp relative
      const tol = outType === 'f16' ? { rtol: 2 ** -11, atol: 1e-6 } : { rtol: 1e-5, atol: 1e-5 };
      expectClose(await g.read(out), gatherColumnsReference(x, T, p), tol, 'x.P');
      expectClose(await g.read(outT), gatherRowsTReference(y, C, p), tol, 'P^T.y');
    });
  }
});

describe('f16 weights: stochastic rounding of W += F.P^T', () => {
  // Identity-like projector (d = rows, r = 1, value 1) so delta[l, i] = alpha * F[l, i] exactly.
  function identity(rows: number): SparseProjectorHost {
    return {
      rows,
      d: rows,
      r: 1,
      positions: Uint32Array.from({ length: rows }, (_, i) => i),
      values: new Float32Array(rows).fill(1),
    };
  }

  it('is unbiased: the mean over many elements matches the exact sum within statistical bounds', async () => {
    const g = gpu();
    const n = 211;
    const m = 257; // odd: f16 words straddle rows
    const pt = uploadSparseProjector(g, 'I', identity(m));
    const rng = makeRng(11);
    // weights around 1 (ulp 2^-10) and around 0.01 (ulp 2^-17), deltas of 0.03..0.7 ulp
    const w = new Float32Array(n * m);
    const f = new Float32Array(n * m);
    for (let k = 0; k < n * m; k++) {
      const base = k % 2 ? 1 : 0.01;
      w[k] = f16Round(base * (1 + 0.25 * rng()));
      const ulp = k % 2 ? 2 ** -10 : 2 ** -17;
      // positive deltas: any rounding bias (e.g. round-to-nearest) shows up in the sum of errors
      f[k] = ulp * (0.03 + 0.67 * rng());
    }
    const wt = g.upload('W', 'f16', [n, m], w);
    const ft = g.upload('F', 'f32', [n, m], f);
    addTimesProjT(g, wt, ft, pt, 1, 12345);
    const got = await g.read(wt);
    // per element: result is one of the two f16 neighbours of w + f; the mean error / ulp -> 0
    let sumErrUlp = 0;
    let sumVar = 0;
    for (let k = 0; k < n * m; k++) {
      const exact = w[k]! + f[k]!;
      const ulp = k % 2 ? 2 ** -10 : 2 ** -17;
      const errUlp = (got[k]! - exact) / ulp;
      expect(Math.abs(errUlp)).toBeLessThan(1.0000001); // one of the two neighbours
      sumErrUlp += errUlp;
      const frac = Math.abs(f[k]!) / ulp;
      sumVar += frac * (1 - frac);
    }
    const sigma = Math.sqrt(sumVar);
    expect(Math.abs(sumErrUlp)).toBeLessThan(5 * sigma);
    // round-to-nearest would lose every update below half an ulp: check some did land
    let moved = 0;
    for (let k = 0; k < n * m; k++) if (got[k] !== w[k]) moved++;
    expect(moved).toBeGreaterThan(0.1 * n * m);
  });

  it('accumulates updates far smaller than one ulp over many steps, reproducibly per seed', async () => {
    const g = gpu();
    const m = 1001;
    const pt = uploadSparseProjector(g, 'I', identity(m));
    const ulp = 2 ** -10;
    const steps = 200;
    const delta = 0.01 * ulp; // each step 1% of an ulp: round-to-nearest would never move
    const wt = g.upload('W', 'f16', [1, m], new Float32Array(m).fill(1));
    const ft = g.upload('F', 'f32', [1, m], new Float32Array(m).fill(delta));
    for (let s = 0; s < steps; s++) addTimesProjT(g, wt, ft, pt, 1, 1000 + s);
    const got = await g.read(wt);
    const mean = Array.from(got).reduce((a, b) => a + b, 0) / m;
    const expected = 1 + steps * delta; // 1 + 2 ulp
    // binomial: per element ulp * Bin(200, 0.01) -> mean std ulp*sqrt(200*0.01*0.99/m)
    expect(Math.abs(mean - expected)).toBeLessThan(5 * ulp * Math.sqrt((steps * 0.01 * 0.99) / m));
    // same seed sequence -> same bits
    const w2 = g.upload('W2', 'f16', [1, m], new Float32Array(m).fill(1));
    for (let s = 0; s < steps; s++) addTimesProjT(g, w2, ft, pt, 1, 1000 + s);
    expect(Array.from(await g.read(w2))).toEqual(Array.from(got));
  });

  it('keeps the chance of updates below one f32 ulp of the weight (an f32 sum first would drop them)', async () => {
    const g = gpu();
    const m = 4099;
    const steps = 100;
    const delta = 3e-8; // 1 + 3e-8 rounds back to 1 in f32; one f16 step above 1 is 2^-10
    const pt = uploadSparseProjector(g, 'I', identity(m));
    const wt = g.upload('W', 'f16', [1, m], new Float32Array(m).fill(1));
    const ft = g.upload('F', 'f32', [1, m], new Float32Array(m).fill(delta));
    for (let s = 0; s < steps; s++) addTimesProjT(g, wt, ft, pt, 1, 77 + s);
    const bumps = Array.from(await g.read(wt)).reduce((n, v) => n + Math.round((v - 1) / 2 ** -10), 0);
    const expected = (m * steps * delta) / 2 ** -10; // Poisson mean, about 12.6
    expect(Math.abs(bumps - expected)).toBeLessThan(5 * Math.sqrt(expected));
    expect(bumps).toBeGreaterThan(0);
  });

  it('saturates instead of overflowing and keeps NaN', async () => {
    const g = gpu();
    const pt = uploadSparseProjector(g, 'I', identity(3));
    const wt = g.upload('W', 'f16', [1, 3], [65504, -65504, 1]);
    const ft = g.upload('F', 'f32', [1, 3], [1000, -1000, Number.NaN]);
    addTimesProjT(g, wt, ft, pt, 1, 7);
    const got = await g.read(wt);
    expect(got[0]).toBe(65504);
    expect(got[1]).toBe(-65504);
    expect(got[2]).toBeNaN();
    expect(f16BitsToF32(f32ToF16Bits(65504))).toBe(65504);
  });
});
