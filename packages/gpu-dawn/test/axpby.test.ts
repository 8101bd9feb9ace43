import { describe, expect, it } from 'vitest';
import { axpby } from '../src/index.js';
import { axpbyReference } from '../src/reference.js';
import { expectClose, makeRng, randomArray, useGpu } from './harness.js';

const gpu = useGpu();

describe('axpby WGSL kernel on the adapter Dawn finds', () => {
  it('runs on a real adapter', () => {
    expect(gpu().ctx.report.backend).not.toMatch(/null/i);
    expect(gpu().ctx.report.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
  });

  for (const n of [1, 7, 255, 257, 4099, 70001]) {
    it(`matches the float64 reference for n=${n}`, async () => {
      const g = gpu();
      const rng = makeRng(n);
      const x = randomArray(rng, n);
      const y = randomArray(rng, n);
      const a = Math.fround(rng() * 4 - 2);
      const b = Math.fround(rng() * 4 - 2);
      const xt = g.upload('x', 'f32', [n], x);
      const yt = g.upload('y', 'f32', [n], y);
      axpby(g, xt, yt, a, b);
      const got = await g.read(yt);
      expectClose(got, axpbyReference(a, x, b, y), { rtol: 1e-6, atol: 1e-7 }, 'axpby');
      xt.release();
      yt.release();
    });
  }
});
