import { describe, expect, it } from 'vitest';
import { copyColumns, f16Round } from '../src/index.js';
import { copyColumnsReference } from '../src/reference.js';
import { expectClose, makeRng, randn, useGpu } from './harness.js';

const gpu = useGpu();

describe('copyColumns', () => {
  it('splits a [T, 3C] matrix into three [T, C] and packs them back', async () => {
    const g = gpu();
    const [T, C] = [13, 7];
    const rng = makeRng(5);
    const qkv = randn(rng, T * 3 * C);
    const src = g.upload('qkv', 'f32', [T, 3 * C], qkv);
    const back = g.tensor('packed', 'f32', [T, 3 * C], 'workspace');
    for (let part = 0; part < 3; part++) {
      const dst = g.tensor(`part${part}`, 'f32', [T, C], 'workspace');
      copyColumns(g, { src, srcCol: part * C, dst, dstCol: 0, width: C });
      const want = copyColumnsReference(qkv, 3 * C, part * C, new Float64Array(T * C), C, 0, C);
      expectClose(await g.read(dst), want, { rtol: 0, atol: 0 }, `part ${part}`);
      copyColumns(g, { src: dst, srcCol: 0, dst: back, dstCol: part * C, width: C });
    }
    expectClose(await g.read(back), qkv, { rtol: 0, atol: 0 }, 'round trip');
  });

  it('copies f16 columns (odd widths and offsets: neighbouring halves of one word)', async () => {
    const g = gpu();
    const [T, C] = [5, 9];
    const qkv = randn(makeRng(6), T * 3 * C).map(f16Round);
    const src = g.upload('qkv', 'f16', [T, 3 * C], qkv);
    const dst = g.upload('dst', 'f16', [T, C + 2], new Float32Array(T * (C + 2)).fill(7));
    copyColumns(g, { src, srcCol: C + 1, dst, dstCol: 1, width: C });
    const want = copyColumnsReference(qkv, 3 * C, C + 1, new Float64Array(T * (C + 2)).fill(7), C + 2, 1, C);
    expectClose(await g.read(dst), want, { rtol: 0, atol: 0 }, 'f16 columns');
    const f32 = g.tensor('f32', 'f32', [T, C], 'workspace');
    expect(() => copyColumns(g, { src, srcCol: 0, dst: f32, dstCol: 0, width: 2 })).toThrow(
      /differ in dtype/,
    );
  });

  it('rejects out-of-range columns', () => {
    const g = gpu();
    const a = g.tensor('a', 'f32', [3, 5], 'workspace');
    const b = g.tensor('b', 'f32', [3, 2], 'workspace');
    expect(() => copyColumns(g, { src: a, srcCol: 4, dst: b, dstCol: 0, width: 2 })).toThrow(/out of range/);
  });
});
