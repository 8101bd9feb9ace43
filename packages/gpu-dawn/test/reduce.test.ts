import { describe, expect, it } from 'vitest';
import {
  biasGrad,
  columnSum,
  f16Round,
  globalNorm,
  nonFiniteCount,
  reduce,
  reduceMax,
  type FloatDType,
  type GpuRuntime,
  type ReduceOp,
  type Tensor,
} from '../src/index.js';
import { biasAddReference, columnSumReference, reduceReference } from '../src/reference.js';
import { expectClose, makeRng, NAN_BITS, randn, useGpu } from './harness.js';

const gpu = useGpu();

const stored = (v: Float32Array, dtype: FloatDType): Float32Array =>
  dtype === 'f16' ? Float32Array.from(v, f16Round) : v;

function poisonedOut(g: GpuRuntime, dtype: 'f32' | 'u32', n = 1): Tensor {
  const t = g.tensor('out', dtype, [n], 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}

/** f32 accumulation error bound: a few f32 ulps of the sum of magnitudes (sums) or of the value. */
function tolerance(op: ReduceOp, values: readonly ArrayLike<number>[]): number {
  if (op === 'max' || op === 'absMax' || op === 'nonFiniteCount') return 0;
  let mag = 0;
  for (const a of values)
    for (let i = 0; i < a.length; i++) mag += op === 'sum' ? Math.abs(a[i]!) : a[i]! ** 2;
  return op === 'norm' ? 4e-6 * Math.sqrt(mag) : 4e-6 * mag;
}

const OPS: ReduceOp[] = ['sum', 'sumOfSquares', 'norm', 'max', 'absMax'];

describe('reductions', () => {
  for (const dtype of ['f32', 'f16'] as const)
    for (const [n, perThread] of [
      [1, undefined],
      [4099, undefined], // 129 -> 5 -> 1
      [70001, undefined],
      [70001, 3], // 23334 -> 7778 -> ... -> 1: eleven levels
    ] as const) {
      it(`${dtype} n=${n}${perThread ? ` by ${perThread}` : ''}: ${OPS.join(', ')} match float64`, async () => {
        const g = gpu();
        const values = stored(randn(makeRng(n + (perThread ?? 0)), n, 2), dtype);
        const x = g.upload('x', dtype, [n], values);
        const out = poisonedOut(g, 'f32', OPS.length);
        OPS.forEach((op, k) =>
          reduce(g, op, x, { out, outIndex: k, ...(perThread && { valuesPerThread: perThread }) }),
        );
        const got = await g.read(out);
        OPS.forEach((op, k) => {
          const want = reduceReference(op, [values]);
          const tol = tolerance(op, [values]);
          expect(Math.abs(got[k]! - want), `${op}: got ${got[k]}, want ${want}`).toBeLessThanOrEqual(tol);
        });
        x.release();
        out.release();
      });
    }

  it('counts NaN and +-inf in f32 and f16 tensors (also across a list), and max propagates NaN', async () => {
    const g = gpu();
    const rng = makeRng(2);
    const a = randn(rng, 5001);
    const b = randn(rng, 777);
    for (const i of [0, 17, 4000, 5000]) a[i] = NaN;
    a[99] = Infinity;
    a[100] = -Infinity;
    b[776] = Infinity; // f16: also 70000 overflows to inf when stored
    b[3] = 70000;
    b[5] = NaN;
    const at = g.upload('a', 'f32', [5001], a);
    const bt = g.upload('b', 'f16', [777], b);
    const out = poisonedOut(g, 'u32', 3);
    nonFiniteCount(g, at, { out, outIndex: 0 });
    nonFiniteCount(g, bt, { out, outIndex: 1 });
    nonFiniteCount(g, [at, bt], { out, outIndex: 2, valuesPerThread: 5 });
    expect(Array.from(await g.read(out))).toEqual([6, 3, 9]);
    expect(reduceReference('nonFiniteCount', [a, stored(b, 'f16')])).toBe(9);
    const m = reduceMax(g, at);
    expect(Number.isNaN((await g.read(m))[0])).toBe(true);
    for (const t of [at, bt, out, m]) t.release();
  });

  it('global norm over a list of mixed f32/f16 tensors writes only its element, deterministically', async () => {
    const g = gpu();
    const rng = makeRng(3);
    const arrays = [randn(rng, 1031), stored(randn(rng, 4099), 'f16'), randn(rng, 1), randn(rng, 30011)];
    const dtypes: FloatDType[] = ['f32', 'f16', 'f32', 'f32'];
    const tensors = arrays.map((a, k) => g.upload(`t${k}`, dtypes[k]!, [a.length], a));
    const out = poisonedOut(g, 'f32', 4);
    globalNorm(g, tensors, { out, outIndex: 2 });
    const first = await g.read(out);
    const want = reduceReference('norm', arrays);
    expect(Math.abs(first[2]! - want)).toBeLessThanOrEqual(tolerance('norm', arrays));
    expect([0, 1, 3].every((k) => Number.isNaN(first[k]))).toBe(true); // untouched poison
    for (let rep = 0; rep < 3; rep++) {
      globalNorm(g, tensors, { out, outIndex: 2 });
      expect((await g.read(out))[2]).toBe(first[2]); // bit-identical
    }
    for (const t of [...tensors, out]) t.release();
  });

  it('accumulates a running non-finite count over f16 and f32 tensors reduced in separate calls', async () => {
    const g = gpu();
    const rng = makeRng(21);
    const a = randn(rng, 3001, 3);
    a[10] = 9e4; // overflows to inf when stored as f16
    a[11] = NaN;
    const b = Float32Array.from([-Infinity]);
    const c = randn(rng, 70001, 2);
    c[5] = NaN;
    const tensors = [
      g.upload('a', 'f16', [a.length], a),
      g.upload('b', 'f32', [1], b),
      g.upload('c', 'f32', [c.length], c),
    ];
    const count = poisonedOut(g, 'u32', 2);
    g.fill32(count, 0);
    for (const t of tensors) nonFiniteCount(g, t, { out: count, outIndex: 1, accumulate: true });
    const want = reduceReference('nonFiniteCount', [stored(a, 'f16'), b, c]);
    expect(want).toBe(4);
    expect(Array.from(await g.read(count))).toEqual([0, want]);
    for (const t of [...tensors, count]) t.release();
  });

  it('accumulates a running absMax (f16, several levels) and sum; rejects accumulating a norm', async () => {
    const g = gpu();
    const rng = makeRng(22);
    const a = stored(randn(rng, 3001, 3), 'f16');
    const c = randn(rng, 70001, 2);
    const at = g.upload('a', 'f16', [a.length], a);
    const ct = g.upload('c', 'f32', [c.length], c);
    const stats = poisonedOut(g, 'f32', 2);
    g.write(stats, [-Infinity, 0]); // the identities of max and sum
    reduce(g, 'absMax', at, { out: stats, outIndex: 0, accumulate: true });
    reduce(g, 'absMax', ct, { out: stats, outIndex: 0, accumulate: true, valuesPerThread: 7 });
    reduce(g, 'sum', at, { out: stats, outIndex: 1, accumulate: true });
    reduce(g, 'sum', ct, { out: stats, outIndex: 1, accumulate: true });
    const got = await g.read(stats);
    expect(got[0]).toBe(reduceReference('absMax', [a, c]));
    expect(Math.abs(got[1]! - reduceReference('sum', [a, c]))).toBeLessThanOrEqual(tolerance('sum', [a, c]));
    expect(() => globalNorm(g, at, { out: stats, accumulate: true })).toThrow(/accumulate sumOfSquares/);
    for (const t of [at, ct, stats]) t.release();
  });

  it('handles -inf-only and empty-of-finite inputs and rejects a wrong result dtype', async () => {
    const g = gpu();
    const x = g.upload('x', 'f32', [5], new Float32Array(5).fill(-Infinity));
    expect((await g.read(reduceMax(g, x)))[0]).toBe(-Infinity);
    const wrong = g.tensor('wrong', 'f32', [1], 'workspace');
    expect(() => nonFiniteCount(g, x, { out: wrong })).toThrow(/result tensor 'wrong: f32\[1\]' must be u32/);
    expect(() => globalNorm(g, x, { out: wrong, outIndex: 1 })).toThrow(/outIndex 1 outside/);
    x.release();
    wrong.release();
  });
});

describe('column sums (bias gradient)', () => {
  for (const dtype of ['f32', 'f16'] as const)
    for (const [rows, cols, chunkRows] of [
      [1, 1, undefined],
      [3, 5, undefined],
      [700, 129, undefined], // 3 chunks of 256 rows, then their sum
      [257, 33, 16], // 17 chunks
    ] as const) {
      it(`${dtype} [${rows}, ${cols}]${chunkRows ? ` chunks of ${chunkRows}` : ''} matches float64`, async () => {
        const g = gpu();
        const values = stored(randn(makeRng(rows * cols), rows * cols), dtype);
        const x = g.upload('dy', dtype, [rows, cols], values);
        const out = g.tensor('dBias', dtype, [cols], 'workspace');
        g.fill32(out, NAN_BITS);
        columnSum(g, x, out, chunkRows ? { chunkRows } : {});
        const want = columnSumReference(values, cols);
        const tol = dtype === 'f16' ? { rtol: 6e-4, atol: 1e-5 * rows } : { rtol: 1e-5, atol: 1e-6 * rows };
        expectClose(await g.read(out), want, tol, 'column sums');
        // accumulate: out += colsum again
        columnSum(g, x, out, { accumulate: true, ...(chunkRows && { chunkRows }) });
        expectClose(
          await g.read(out),
          want.map((v) => 2 * v),
          { ...tol, atol: 2 * tol.atol },
          'accumulated',
        );
        x.release();
        out.release();
      });
    }

  for (const [rows, cols, chunkRows] of [
    [7, 5, undefined],
    [700, 129, undefined],
    [257, 33, 16],
  ] as const) {
    it(`f16 dy -> f32 bias gradient [${rows}, ${cols}]${chunkRows ? ` chunks of ${chunkRows}` : ''}, accumulating`, async () => {
      const g = gpu();
      const values = stored(randn(makeRng(rows + cols), rows * cols), 'f16');
      const x = g.upload('dy16', 'f16', [rows, cols], values);
      const out = g.tensor('dBias', 'f32', [cols], 'workspace');
      g.fill32(out, NAN_BITS);
      columnSum(g, x, out, chunkRows ? { chunkRows } : {});
      const want = columnSumReference(values, cols);
      // exact f16 inputs, f32 sums: the f32 bound
      const tol = { rtol: 1e-5, atol: 1e-6 * rows };
      expectClose(await g.read(out), want, tol, 'column sums f16 -> f32');
      biasGrad(g, x, out, { accumulate: true, ...(chunkRows && { chunkRows }) });
      expectClose(
        await g.read(out),
        want.map((v) => 2 * v),
        { ...tol, atol: 2 * tol.atol },
        'accumulated',
      );
      x.release();
      out.release();
    });
  }

  it('is the gradient of biasAdd: matches finite differences of sum(dy * (x + bias))', async () => {
    const g = gpu();
    const rng = makeRng(12);
    const [rows, cols] = [9, 7];
    const [x, bias, dy] = [randn(rng, rows * cols), randn(rng, cols), randn(rng, rows * cols)];
    const loss = (b: Float64Array): number => biasAddReference(x, b).reduce((s, v, i) => s + v * dy[i]!, 0);
    const h = 1e-6;
    const fd = Float64Array.from({ length: cols }, (_, c) => {
      const plus = Float64Array.from(bias);
      const minus = Float64Array.from(bias);
      plus[c]! += h;
      minus[c]! -= h;
      return (loss(plus) - loss(minus)) / (2 * h);
    });
    const dyt = g.upload('dy', 'f32', [rows, cols], dy);
    const grad = biasGrad(g, dyt);
    expectClose(await g.read(grad), fd, { rtol: 1e-5, atol: 1e-6 }, 'bias grad vs FD');
    dyt.release();
    grad.release();
  });
});
