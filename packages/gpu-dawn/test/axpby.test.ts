import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext, axpbyReference, encodeAxpby, readFloat32, uploadFloat32 } from '../src/index.js';
import { makeRng } from './rng.js';

let ctx: GpuContext;
// No adapter is a failure, not a skip: CI must prove the real GPU path runs (llvmpipe there).
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.destroy());

describe('axpby WGSL kernel on the adapter Dawn finds', () => {
  it('reports a real adapter', () => {
    expect(ctx.report.backend).not.toMatch(/null/i);
    expect(ctx.report.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
  });

  for (const n of [1, 7, 255, 257, 4099, 70001]) {
    it(`matches the float64 reference for n=${n}`, async () => {
      const rng = makeRng(n);
      const x = Float32Array.from({ length: n }, () => rng() * 2 - 1);
      const y = Float32Array.from({ length: n }, () => rng() * 2 - 1);
      const a = rng() * 4 - 2;
      const b = rng() * 4 - 2;
      // Poison past the end: a kernel writing out of bounds would change it.
      const yPadded = new Float32Array(n + 64).fill(Number.NaN);
      yPadded.set(y);
      const xb = uploadFloat32(ctx, 'x', x);
      const yb = uploadFloat32(ctx, 'y', yPadded);
      const enc = ctx.device.createCommandEncoder();
      encodeAxpby(ctx, enc, { x: xb, y: yb, n, a, b });
      ctx.device.queue.submit([enc.finish()]);
      const got = await readFloat32(ctx, yb, n + 64);
      const want = axpbyReference(Math.fround(a), x, Math.fround(b), y);
      for (let i = 0; i < n; i++) {
        const tol = 1e-6 * (Math.abs(a * x[i]!) + Math.abs(b * y[i]!)) + 1e-7;
        if (!(Math.abs(got[i]! - want[i]!) <= tol)) expect.fail(`y[${i}] = ${got[i]}, want ${want[i]}`);
      }
      for (let i = n; i < n + 64; i++) expect(got[i]).toBeNaN();
      xb.destroy();
      yb.destroy();
    });
  }
});
