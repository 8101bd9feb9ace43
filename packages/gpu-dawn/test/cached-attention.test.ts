import { describe, expect, it } from 'vitest';
import { attentionForwardReference } from '../src/kernels/attention.js';
import { appendToCache, cachedAttention, cachedAttentionReference } from '../src/kernels/cached-attention.js';
import { NAN_BITS, expectClose, makeRng, randn, useGpu } from './harness.js';

const gpu = useGpu();

describe('cached attention', () => {
  // [rows, past, nHeads, nKvHeads, headDim]: one decode row, a prefill, GQA, head_dim above the workgroup
  for (const [rows, past, H, HK, D] of [
    [1, 0, 1, 1, 1],
    [1, 70, 4, 2, 10],
    [9, 0, 6, 2, 8],
    [3, 130, 3, 3, 67],
    [2, 5, 2, 1, 130],
  ] as const) {
    it(`${rows} rows after ${past} cached positions, ${H}/${HK} heads of ${D}`, async () => {
      const g = gpu();
      const rng = makeRng(rows * 1000 + past * 10 + D);
      const capacity = past + rows + 3;
      const positions = past + rows;
      const q = randn(rng, rows * H * D);
      const k = randn(rng, positions * HK * D);
      const v = randn(rng, positions * HK * D);
      // positions not filled yet hold NaN: reading them would show
      const withPast = (x: Float32Array) => {
        const a = new Float32Array(capacity * HK * D).fill(NaN);
        a.set(x.subarray(0, past * HK * D));
        return a;
      };
      const kCache = g.upload('kCache', 'f32', [capacity, HK, D], withPast(k));
      const vCache = g.upload('vCache', 'f32', [capacity, HK, D], withPast(v));
      // the new rows go in through appendToCache, as in generation
      const kNew = g.upload('kNew', 'f32', [rows, HK, D], k.subarray(past * HK * D));
      const vNew = g.upload('vNew', 'f32', [rows, HK, D], v.subarray(past * HK * D));
      appendToCache(g, kCache, kNew, past);
      appendToCache(g, vCache, vNew, past);
      const qT = g.upload('q', 'f32', [rows, H, D], q);
      const o = g.tensor('o', 'f32', [rows, H, D], 'workspace');
      g.fill32(o, NAN_BITS);
      cachedAttention(g, { q: qT, kCache, vCache, o, past });
      const got = await g.read(o);
      const want = cachedAttentionReference(q, k, v, { rows, past, nHeads: H, nKvHeads: HK, headDim: D });
      expectClose(got, want, { rtol: 2e-5, atol: 2e-6 }, 'o');
      // independent check: the last rows of full causal attention over all positions
      const fullQ = new Float64Array(positions * H * D);
      fullQ.set(q, past * H * D);
      const full = attentionForwardReference(fullQ, k, v, {
        batch: 1,
        seqLen: positions,
        nHeads: H,
        nKvHeads: HK,
        headDim: D,
      });
      expectClose(
        want,
        full.o.subarray(past * H * D),
        { rtol: 1e-12, atol: 1e-12 },
        'reference vs full attention',
      );
      for (const t of [kCache, vCache, kNew, vNew, qT, o]) t.release();
    });
  }

  it('refuses positions beyond the cache and mismatched heads', () => {
    const g = gpu();
    const cache = g.tensor('cache', 'f32', [4, 2, 8], 'workspace');
    const q = g.tensor('q', 'f32', [2, 3, 8], 'workspace');
    const o = g.tensor('o', 'f32', [2, 3, 8], 'workspace');
    expect(() => cachedAttention(g, { q, kCache: cache, vCache: cache, o, past: 0 })).toThrow(
      /kv heads must divide/,
    );
    const q4 = g.tensor('q4', 'f32', [2, 4, 8], 'workspace');
    const o4 = g.tensor('o4', 'f32', [2, 4, 8], 'workspace');
    expect(() => cachedAttention(g, { q: q4, kCache: cache, vCache: cache, o: o4, past: 3 })).toThrow(
      /exceed the cache's capacity of 4/,
    );
    const rows = g.tensor('rows', 'f32', [2, 2, 8], 'workspace');
    expect(() => appendToCache(g, cache, rows, 3)).toThrow(/outside the cache's 4 positions/);
    for (const t of [cache, q, o, q4, o4, rows]) t.release();
  });
});
