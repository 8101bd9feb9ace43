// Tensors larger than one storage binding, on a runtime whose binding limit is lowered to 4 KiB (the
// runtime refuses any larger binding, so every kernel below must bind them in blocks): the blocks tile
// the tensor at aligned offsets, and the kernels that meet embeddings, LM heads, their gradients and
// optimizer state (reductions, element-wise ops and AdamW, random fill, the embedding gather and its
// backward) match float64 references and the unsplit results, on odd sizes.
import { describe, expect, it } from 'vitest';
import {
  adamw,
  biasAdd,
  cast,
  createAdamWState,
  elementBlocks,
  embeddingBackward,
  embeddingForward,
  f16Round,
  fillNormal,
  nonFiniteCount,
  packScaledHalf,
  reduce,
  rowBlocks,
  GpuRuntime,
  type Tensor,
} from '../src/index.js';
import {
  adamwReference,
  biasAddReference,
  embeddingBackwardReference,
  embeddingReference,
  packScaledHalfReference,
  reduceReference,
} from '../src/reference.js';
import { NAN_BITS, expectClose, makeRng, randn, useGpu } from './harness.js';

const LIMIT = 4096;
const small = useGpu({ maxBindingBytes: LIMIT });
const wide = useGpu();

describe('blocks', () => {
  it('row blocks tile a tensor in whole rows at aligned offsets, each within the limit', () => {
    const g = small();
    const align = g.limits.minStorageBufferOffsetAlignment;
    for (const [dtype, rows, cols] of [
      ['f32', 101, 13],
      ['f16', 77, 30],
      ['f32', 3, 1024],
    ] as const) {
      const t = g.tensor('t', dtype, [rows, cols], 'workspace');
      const blocks = rowBlocks(g, t);
      expect(blocks.length).toBeGreaterThan(1);
      let next = 0;
      for (const b of blocks) {
        expect(b.rowStart).toBe(next);
        expect(b.tensor.byteOffset % align).toBe(0);
        expect(b.tensor.bindingSize).toBeLessThanOrEqual(LIMIT);
        expect(b.tensor.shape).toEqual([b.rows, cols]);
        next += b.rows;
      }
      expect(next).toBe(rows);
      t.release();
    }
    const fits = g.tensor('fits', 'f32', [10, 10], 'workspace');
    expect(rowBlocks(g, fits)).toEqual([{ rowStart: 0, rows: 10, tensor: fits }]);
    fits.release();
    const wideRow = g.tensor('wide row', 'f32', [2, 2000], 'workspace');
    expect(() => rowBlocks(g, wideRow)).toThrow(/do not fit one binding of 4096 bytes/);
    wideRow.release();
  });

  it('element blocks start where every dtype is aligned and a broadcast row begins', () => {
    const g = small();
    const a = g.tensor('a', 'f32', [5000], 'workspace');
    const b = g.tensor('b', 'f16', [5000], 'workspace');
    const blocks = elementBlocks(g, [a, b], 5000, 24);
    expect(blocks.reduce((n, x) => n + x.count, 0)).toBe(5000);
    for (const x of blocks) {
      expect(x.start % 24).toBe(0);
      expect((x.start * 2) % g.limits.minStorageBufferOffsetAlignment).toBe(0);
      expect(x.count * 4).toBeLessThanOrEqual(LIMIT);
    }
    a.release();
    b.release();
  });
});

describe('kernels on tensors larger than a binding', () => {
  it('reductions over split tensors (also in a list) match float64', async () => {
    const g = small();
    const rng = makeRng(11);
    const x = randn(rng, 3001);
    const y = randn(rng, 2333);
    y[1999] = Number.NaN;
    y[7] = Number.POSITIVE_INFINITY;
    const xt = g.upload('x', 'f32', [3001], x);
    const yt = g.upload('y', 'f16', [2333], Float32Array.from(y, f16Round));
    const yHost = Array.from(y, f16Round);
    for (const op of ['sum', 'norm'] as const) {
      const out = reduce(g, op, xt);
      expectClose(await g.read(out), [reduceReference(op, [x])], { rtol: 1e-5, atol: 1e-5 }, op);
      out.release();
    }
    const count = nonFiniteCount(g, [xt, yt]);
    expect(Array.from(await g.read(count))).toEqual([reduceReference('nonFiniteCount', [x, yHost])]);
    for (const t of [count, xt, yt]) t.release();
  });

  it('element-wise ops (a broadcast row too), casts and AdamW over split tensors match float64', async () => {
    const g = small();
    const rng = makeRng(12);
    const [rows, cols] = [187, 24];
    const x = randn(rng, rows * cols);
    const bias = randn(rng, cols);
    const xt = g.upload('x', 'f32', [rows, cols], x);
    const bt = g.upload('bias', 'f32', [cols], bias);
    const y = biasAdd(g, xt, bt);
    expectClose(await g.read(y), biasAddReference(x, bias), { rtol: 1e-6, atol: 1e-6 }, 'biasAdd');
    const half = cast(g, xt, 'f16');
    expectClose(await g.read(half), Array.from(x, f16Round), { rtol: 0, atol: 0 }, 'cast');
    // AdamW over a split f16 param with an f32 master, 3 steps
    const n = 2501;
    const w = Float32Array.from(randn(rng, n), f16Round);
    const param = g.upload('w', 'f16', [n], w);
    const grad = g.tensor('g', 'f32', [n], 'workspace');
    const state = createAdamWState(g, param, { master: true });
    const host = { param: Float64Array.from(w), m: new Float64Array(n), v: new Float64Array(n) };
    const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
    for (let step = 1; step <= 3; step++) {
      const gv = randn(rng, n);
      g.write(grad, gv);
      adamw(g, { param, grad, ...state }, { ...hyper, step });
      adamwReference(host, gv, { ...hyper, step });
    }
    expectClose(await g.read(state.master!), host.param, { rtol: 2e-5, atol: 1e-6 }, 'master');
    expectClose(await g.read(state.m), host.m, { rtol: 2e-5, atol: 1e-7 }, 'm');
    for (const t of [xt, bt, y, half, param, grad, state.m, state.v, state.master!]) t.release();
  });

  it('random fill gives the same values split or not', async () => {
    const [g, u] = [small(), wide()];
    for (const dtype of ['f32', 'f16'] as const) {
      const a = g.tensor('a', dtype, [3333], 'workspace');
      const b = u.tensor('b', dtype, [3333], 'workspace');
      fillNormal(g, a, { seed: 9, std: 0.5 });
      fillNormal(u, b, { seed: 9, std: 0.5 });
      expect(Array.from(await g.read(a))).toEqual(Array.from(await u.read(b)));
      a.release();
      b.release();
    }
  });

  it('the embedding gather and its backward (f32 or f16 dy) over a split table match float64', async () => {
    const g = small();
    const rng = makeRng(13);
    for (const dtype of ['f32', 'f16'] as const) {
      const [vocab, cols, tokens] = [301, 9, 57];
      const ids = Int32Array.from({ length: tokens }, () => Math.floor(rng() * (vocab + 2)) - 1);
      ids[0] = vocab - 1; // the last row, in the last block
      const table = Float64Array.from(randn(rng, vocab * cols), dtype === 'f16' ? f16Round : Math.fround);
      const idsT = g.upload('ids', 'i32', [tokens], ids);
      const tableT = g.upload('table', dtype, [vocab, cols], table);
      expect(rowBlocks(g, tableT).length).toBeGreaterThan(1);
      const out = poisoned(g, [tokens, cols]);
      embeddingForward(g, { ids: idsT, table: tableT, out });
      const got = await g.read(out);
      const want = embeddingReference(ids, table, cols);
      for (let i = 0; i < want.length; i++)
        if (Number.isNaN(want[i]!)) expect(got[i], `out[${i}] (id out of range)`).toBeNaN();
        else expect(got[i], `out[${i}]`).toBe(want[i]);
      // dy in the table's dtype: an f16 dy (mixed precision) is read as f32 by every row block's pass
      const dy = Float64Array.from(randn(rng, tokens * cols), dtype === 'f16' ? f16Round : Math.fround);
      const dyT = g.upload('dy', dtype, [tokens, cols], dy);
      const start = randn(rng, vocab * cols);
      const grad = g.upload('grad', 'f32', [vocab, cols], start);
      embeddingBackward(g, { dy: dyT, ids: idsT, tableGrad: grad, accumulate: true });
      const wantGrad = embeddingBackwardReference(dy, ids, vocab, cols).map((v, i) => v + start[i]!);
      expectClose(await g.read(grad), wantGrad, { rtol: 1e-5, atol: 1e-5 }, 'accumulated tableGrad');
      g.fill32(grad, NAN_BITS);
      embeddingBackward(g, { dy: dyT, ids: idsT, tableGrad: grad });
      const fresh = embeddingBackwardReference(dy, ids, vocab, cols);
      expectClose(await g.read(grad), fresh, { rtol: 1e-5, atol: 1e-5 }, 'tableGrad');
      for (const t of [idsT, tableT, out, dyT, grad]) t.release();
    }
  });

  it('packScaledHalf over a split tensor gives the unsplit bits and the one scale of the whole', async () => {
    const g = small();
    const n = 3001; // 12 KiB of f32: three bindings, an odd tail
    const x = randn(makeRng(91), n, 3e-3);
    x[2500] = 40; // the largest value in a late block still sets every block's scale
    const want = packScaledHalfReference(x);
    const src = g.upload('src', 'f32', [n], x);
    const dst = g.tensor('dst', 'f16', [n], 'workspace');
    const header = g.tensor('header', 'u32', [2], 'workspace');
    g.fill32(dst, NAN_BITS);
    packScaledHalf(g, src, dst, { scaleOut: header, scaleIndex: 1 });
    const words = (await g.read(header)) as Uint32Array;
    const bits = new Uint16Array(await g.readBytes(dst.buffer, dst.byteOffset, dst.bindingSize, 'dst'), 0, n);
    expect(new Float32Array(words.buffer, words.byteOffset, 2)[1]).toBe(want.scale);
    const bad = [...bits].findIndex((b, i) => b !== want.bits[i]);
    expect(bad, `element ${bad}`).toBe(-1);
    for (const t of [src, dst, header]) t.release();
  });
});

function poisoned(g: GpuRuntime, shape: number[]): Tensor {
  const t = g.tensor('out', 'f32', shape, 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}
