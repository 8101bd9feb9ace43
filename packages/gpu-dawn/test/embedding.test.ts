import { describe, expect, it } from 'vitest';
import { f16Round } from '../src/dtype.js';
import {
  embeddingBackward,
  embeddingBackwardReference,
  embeddingForward,
  embeddingReference,
} from '../src/kernels/embedding.js';
import { positionsOf } from '../src/kernels/rows.js';
import type { GpuRuntime } from '../src/runtime.js';
import type { Tensor } from '../src/tensor.js';
import { NAN_BITS, expectClose, makeRng, randn, useGpu } from './harness.js';

const gpu = useGpu();

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function poisoned(g: GpuRuntime, label: string, shape: number[]): Tensor {
  const t = g.tensor(label, 'f32', shape, 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}

function randomIds(rng: () => number, tokens: number, distinct: number): Int32Array {
  return Int32Array.from({ length: tokens }, () => Math.floor(rng() * distinct));
}

/** Table values as the GPU sees them (f16-rounded when stored as f16). */
function tableValues(rng: () => number, n: number, dtype: 'f32' | 'f16'): Float64Array {
  return Float64Array.from(randn(rng, n), dtype === 'f16' ? f16Round : Math.fround);
}

describe('embedding forward', () => {
  describe.each(['f32', 'f16'] as const)('table %s', (dtype) => {
    for (const [tokens, vocab, cols] of [
      [1, 1, 1],
      [9, 53, 7],
      [37, 11, 300],
    ] as const) {
      it(`gathers ${tokens} tokens from a ${vocab} x ${cols} table`, async () => {
        const g = gpu();
        const rng = makeRng(tokens * 100 + cols);
        const ids = randomIds(rng, tokens, vocab);
        const table = tableValues(rng, vocab * cols, dtype);
        const idsT = g.upload('ids', 'i32', [tokens], ids);
        const tableT = g.upload('table', dtype, [vocab, cols], table);
        const out = poisoned(g, 'out', [tokens, cols]);
        embeddingForward(g, { ids: idsT, table: tableT, out });
        expectClose(await g.read(out), embeddingReference(ids, table, cols), { rtol: 0, atol: 0 }, 'out');
        for (const t of [idsT, tableT, out]) t.release();
      });
    }

    it('adds learned position embeddings by range (batch of sequences) and by id tensor', async () => {
      const g = gpu();
      const rng = makeRng(7);
      const [batch, seq, vocab, cols, maxPositions] = [3, 5, 17, 29, 11];
      const tokens = batch * seq;
      const ids = randomIds(rng, tokens, vocab);
      const table = tableValues(rng, vocab * cols, dtype);
      const wpe = tableValues(rng, maxPositions * cols, dtype);
      const idsT = g.upload('ids', 'i32', [batch, seq], ids);
      const tableT = g.upload('table', dtype, [vocab, cols], table);
      const wpeT = g.upload('wpe', dtype, [maxPositions, cols], wpe);
      const out = poisoned(g, 'out', [batch, seq, cols]);
      const range = { offset: 2, sequenceLength: seq };
      embeddingForward(g, { ids: idsT, table: tableT, out, positionTable: wpeT, positions: range });
      const want = embeddingReference(ids, table, cols, {
        table: wpe,
        positions: positionsOf(range, tokens),
      });
      expectClose(await g.read(out), want, { rtol: 1e-7, atol: 0 }, 'out (range positions)');

      const posIds = randomIds(rng, tokens, maxPositions);
      const posT = g.upload('positionIds', 'i32', [tokens], posIds);
      g.fill32(out, NAN_BITS);
      embeddingForward(g, { ids: idsT, table: tableT, out, positionTable: wpeT, positions: posT });
      const want2 = embeddingReference(ids, table, cols, { table: wpe, positions: posIds });
      expectClose(await g.read(out), want2, { rtol: 1e-7, atol: 0 }, 'out (position ids)');
      for (const t of [idsT, tableT, wpeT, out, posT]) t.release();
    });
  });

  it('covers more tokens than one grid dimension holds (65535 workgroups)', async () => {
    const g = gpu();
    const rng = makeRng(65539);
    const [tokens, vocab, cols] = [65539, 5, 1];
    const ids = randomIds(rng, tokens, vocab);
    const table = tableValues(rng, vocab * cols, 'f32');
    const idsT = g.upload('ids', 'i32', [tokens], ids);
    const tableT = g.upload('table', 'f32', [vocab, cols], table);
    const out = poisoned(g, 'out', [tokens, cols]);
    embeddingForward(g, { ids: idsT, table: tableT, out });
    expectClose(await g.read(out), embeddingReference(ids, table, cols), { rtol: 0, atol: 0 }, 'out');
    for (const t of [idsT, tableT, out]) t.release();
  });

  it('gives NaN rows for ids outside the vocabulary', async () => {
    const g = gpu();
    const idsT = g.upload('ids', 'i32', [3], [1, 2, -1]);
    const tableT = g.upload('table', 'f32', [2, 2], [1, 2, 3, 4]);
    const out = poisoned(g, 'out', [3, 2]);
    embeddingForward(g, { ids: idsT, table: tableT, out });
    const got = Array.from(await g.read(out));
    expect(got.slice(0, 2)).toEqual([3, 4]);
    expect(got.slice(2).every(Number.isNaN)).toBe(true);
    for (const t of [idsT, tableT, out]) t.release();
  });

  it('checks shapes and names the tensor', () => {
    const g = gpu();
    const idsT = g.tensor('ids', 'i32', [4], 'workspace');
    const tableT = g.tensor('table', 'f32', [5, 3], 'workspace');
    const out = g.tensor('out', 'f32', [4, 2], 'workspace');
    const wpe = g.tensor('wpe', 'f32', [3, 3], 'workspace');
    const out3 = g.tensor('out3', 'f32', [4, 3], 'workspace');
    expect(() => embeddingForward(g, { ids: idsT, table: tableT, out })).toThrow(
      /out must be f32 \[\.\.\., 3\]/,
    );
    expect(() => embeddingForward(g, { ids: idsT, table: tableT, out: out3, positionTable: wpe })).toThrow(
      /position 3 is past positionTable's 3 rows/,
    );
    expect(() => embeddingForward(g, { ids: tableT, table: tableT, out: out3 })).toThrow(/ids must be i32/);
    for (const t of [idsT, tableT, out, wpe, out3]) t.release();
  });
});

describe('embedding backward (deterministic scatter-add)', () => {
  for (const [tokens, vocab, cols, distinct] of [
    [1, 1, 1, 1],
    [13, 29, 5, 6],
    [601, 41, 3, 9], // several rank tiles, long runs of equal ids
    [70, 1001, 259, 1001],
  ] as const) {
    it(`${tokens} tokens into a ${vocab} x ${cols} gradient (${distinct} distinct ids)`, async () => {
      const g = gpu();
      const rng = makeRng(tokens + vocab);
      const ids = randomIds(rng, tokens, distinct);
      const dy = randn(rng, tokens * cols);
      const idsT = g.upload('ids', 'i32', [tokens], ids);
      const dyT = g.upload('dy', 'f32', [tokens, cols], dy);
      const grad = poisoned(g, 'grad', [vocab, cols]);
      embeddingBackward(g, { dy: dyT, ids: idsT, tableGrad: grad });
      const want = embeddingBackwardReference(dy, ids, vocab, cols);
      const got = (await g.read(grad)) as Float32Array;
      expectClose(got, want, { rtol: 1e-5, atol: 1e-5 }, 'tableGrad');
      // Bitwise reproducible: a second run gives the same bits.
      embeddingBackward(g, { dy: dyT, ids: idsT, tableGrad: grad });
      expect(Array.from((await g.read(grad)) as Float32Array)).toEqual(Array.from(got));
      for (const t of [idsT, dyT, grad]) t.release();
    });
  }

  for (const [tokens, vocab, cols, distinct] of [
    [13, 29, 5, 6], // rows of odd length: f16 dy rows straddle words
    [601, 41, 3, 9],
  ] as const) {
    it(`f16 dy: ${tokens} tokens into a ${vocab} x ${cols} f32 gradient, bitwise the f32 kernel on the same values`, async () => {
      const g = gpu();
      const rng = makeRng(tokens * 3 + vocab);
      const ids = randomIds(rng, tokens, distinct);
      const dy = Float32Array.from(randn(rng, tokens * cols), f16Round);
      const idsT = g.upload('ids', 'i32', [tokens], ids);
      const dy16 = g.upload('dy16', 'f16', [tokens, cols], dy);
      const dy32 = g.upload('dy32', 'f32', [tokens, cols], dy);
      const grad = poisoned(g, 'grad', [vocab, cols]);
      embeddingBackward(g, { dy: dy16, ids: idsT, tableGrad: grad });
      const got = (await g.read(grad)) as Float32Array;
      expectClose(
        got,
        embeddingBackwardReference(dy, ids, vocab, cols),
        { rtol: 1e-5, atol: 1e-5 },
        'tableGrad',
      );
      // f16 -> f32 is exact and the summation order is the same: identical bits
      embeddingBackward(g, { dy: dy32, ids: idsT, tableGrad: grad });
      expect(Array.from((await g.read(grad)) as Float32Array)).toEqual(Array.from(got));
      // position range + accumulate with f16 dy
      const range = { offset: 1, sequenceLength: 5 };
      embeddingBackward(g, { dy: dy16, ids: range, tableGrad: grad, accumulate: true });
      const positions = positionsOf(range, tokens);
      const want = embeddingBackwardReference(dy, positions, vocab, cols).map((v, i) => v + got[i]!);
      expectClose(await g.read(grad), want, { rtol: 1e-5, atol: 1e-5 }, 'accumulated position grad');
      for (const t of [idsT, dy16, dy32, grad]) t.release();
    });
  }

  it('accumulates, skips paddingIdx and ids out of range', async () => {
    const g = gpu();
    const rng = makeRng(3);
    const [tokens, vocab, cols] = [40, 7, 9];
    const ids = randomIds(rng, tokens, vocab + 2).map((v) => v - 1); // includes -1 and vocab
    const dy = randn(rng, tokens * cols);
    const start = randn(rng, vocab * cols);
    const idsT = g.upload('ids', 'i32', [tokens], ids);
    const dyT = g.upload('dy', 'f32', [tokens, cols], dy);
    const grad = g.upload('grad', 'f32', [vocab, cols], start);
    embeddingBackward(g, { dy: dyT, ids: idsT, tableGrad: grad, accumulate: true, paddingIdx: 2 });
    const want = embeddingBackwardReference(dy, ids, vocab, cols, 2).map((v, i) => v + start[i]!);
    expectClose(await g.read(grad), want, { rtol: 1e-5, atol: 1e-5 }, 'accumulated tableGrad');
    for (const t of [idsT, dyT, grad]) t.release();
  });

  it('sums position-embedding gradients of a batch of sequences (range positions)', async () => {
    const g = gpu();
    const rng = makeRng(5);
    const [batch, seq, cols, maxPositions] = [4, 7, 11, 13];
    const tokens = batch * seq;
    const dy = randn(rng, tokens * cols);
    const dyT = g.upload('dy', 'f32', [batch, seq, cols], dy);
    const grad = poisoned(g, 'wpeGrad', [maxPositions, cols]);
    const range = { offset: 3, sequenceLength: seq };
    embeddingBackward(g, { dy: dyT, ids: range, tableGrad: grad });
    const want = embeddingBackwardReference(dy, positionsOf(range, tokens), maxPositions, cols);
    expectClose(await g.read(grad), want, { rtol: 1e-5, atol: 1e-6 }, 'wpe grad');
    for (const t of [dyT, grad]) t.release();
  });

  it('float64 backward equals central finite differences of the float64 forward (token and position table)', () => {
    const rng = makeRng(9);
    const [tokens, vocab, cols, maxPositions] = [6, 4, 3, 5];
    const ids = randomIds(rng, tokens, vocab);
    const positions = positionsOf({ offset: 1, sequenceLength: 3 }, tokens);
    const table = Float64Array.from(randn(rng, vocab * cols));
    const wpe = Float64Array.from(randn(rng, maxPositions * cols));
    const dy = randn(rng, tokens * cols);
    const loss = () => dot(embeddingReference(ids, table, cols, { table: wpe, positions }), dy);
    const h = 1e-6;
    const fd = (arr: Float64Array) =>
      Float64Array.from(arr, (v, i) => {
        arr[i] = v + h;
        const up = loss();
        arr[i] = v - h;
        const down = loss();
        arr[i] = v;
        return (up - down) / (2 * h);
      });
    expectClose(
      fd(table),
      embeddingBackwardReference(dy, ids, vocab, cols),
      { rtol: 1e-7, atol: 1e-8 },
      'fd wte',
    );
    expectClose(
      fd(wpe),
      embeddingBackwardReference(dy, positions, maxPositions, cols),
      { rtol: 1e-7, atol: 1e-8 },
      'fd wpe',
    );
  });

  it('GPU backward agrees with a directional finite difference of the GPU forward', async () => {
    const g = gpu();
    const rng = makeRng(13);
    const [tokens, vocab, cols] = [23, 8, 6];
    const ids = randomIds(rng, tokens, vocab);
    const table = randn(rng, vocab * cols);
    const v = randn(rng, vocab * cols);
    const dy = randn(rng, tokens * cols);
    const idsT = g.upload('ids', 'i32', [tokens], ids);
    const out = poisoned(g, 'out', [tokens, cols]);
    const lossAt = async (h: number) => {
      const tableT = g.upload(
        'table',
        'f32',
        [vocab, cols],
        Float32Array.from(table, (x, i) => x + h * v[i]!),
      );
      embeddingForward(g, { ids: idsT, table: tableT, out });
      const y = await g.read(out);
      tableT.release();
      return dot(y, dy);
    };
    const h = 1e-2;
    const numeric = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
    const dyT = g.upload('dy', 'f32', [tokens, cols], dy);
    const grad = poisoned(g, 'grad', [vocab, cols]);
    embeddingBackward(g, { dy: dyT, ids: idsT, tableGrad: grad });
    const analytic = dot(await g.read(grad), v);
    expect(Math.abs(numeric - analytic)).toBeLessThan(1e-3 * Math.max(1, Math.abs(analytic)));
    for (const t of [idsT, out, dyT, grad]) t.release();
  });
});
