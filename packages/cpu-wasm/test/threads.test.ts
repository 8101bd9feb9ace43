import { afterAll, describe, expect, it } from 'vitest';
import { KernelPool, createSharedMemory, instantiateKernels, wasmFeatures } from '../src/index.js';
import { makeRng } from './rng.js';

const memory = createSharedMemory(64 << 20);
const pool = new KernelPool({ threads: 2, memory });
afterAll(() => pool.destroy());

describe('SIMD kernels from two worker threads over one shared memory', () => {
  it('the engine has wasm SIMD and threads', () => {
    const f = wasmFeatures();
    expect(f.simd128).toBe(true);
    expect(f.threads).toBe(true);
  });

  for (const n of [1, 3, 1001, 262_147]) {
    it(`axpy_f32 split across 2 workers matches float64 reference (n=${n})`, async () => {
      const rng = makeRng(n * 7 + 1);
      const xOff = pool.firstFreeByte;
      const yOff = xOff + Math.ceil((n * 4) / 64) * 64 + 64;
      const x = new Float32Array(memory.buffer, xOff, n);
      const y = new Float32Array(memory.buffer, yOff, n + 8);
      for (let i = 0; i < n; i++) x[i] = rng() * 2 - 1;
      for (let i = 0; i < n; i++) y[i] = rng() * 2 - 1;
      y.fill(12345, n); // guard: must stay untouched
      const y0 = Float64Array.from(y.subarray(0, n));
      const a = Math.fround(rng() * 3 - 1.5);
      // Split at an odd point so both workers see a SIMD body and a scalar tail.
      const half = Math.floor(n / 2) | 1;
      const first = Math.min(half, n);
      await Promise.all([
        pool.run({ kernel: 'axpy_f32', yByteOffset: yOff, xByteOffset: xOff, length: first, a }),
        pool.run({
          kernel: 'axpy_f32',
          yByteOffset: yOff + first * 4,
          xByteOffset: xOff + first * 4,
          length: n - first,
          a,
        }),
      ]);
      for (let i = 0; i < n; i++) {
        const want = y0[i]! + a * x[i]!;
        if (Math.abs(y[i]! - want) > 1e-6 * (Math.abs(want) + 1)) expect.fail(`y[${i}]=${y[i]} want ${want}`);
      }
      for (let i = n; i < n + 8; i++) expect(y[i]).toBe(12345);
    });
  }

  it('sum_squares_f32 per worker adds up to the float64 reference', async () => {
    const n = 100_003;
    const rng = makeRng(99);
    const off = pool.firstFreeByte;
    const x = new Float32Array(memory.buffer, off, n);
    let want = 0;
    for (let i = 0; i < n; i++) {
      x[i] = rng() * 2 - 1;
      want += x[i]! * x[i]!;
    }
    const parts = await Promise.all([
      pool.run({ kernel: 'sum_squares_f32', xByteOffset: off, length: 50_001 }),
      pool.run({ kernel: 'sum_squares_f32', xByteOffset: off + 50_001 * 4, length: n - 50_001 }),
    ]);
    expect(Math.abs(parts[0]! + parts[1]! - want) / want).toBeLessThan(1e-12);
  });

  it('the main thread can call the same module directly', () => {
    const k = instantiateKernels(memory, 1 << 16);
    const off = pool.firstFreeByte;
    new Float32Array(memory.buffer, off, 5).set([1, 2, 3, 4, 5]);
    expect(k.sum_squares_f32(off, 5)).toBe(55);
  });

  it('rejects use after destroy', async () => {
    const p = new KernelPool({ threads: 1, memory });
    await p.destroy();
    expect(() => p.run({ kernel: 'sum_squares_f32', xByteOffset: 0, length: 0 })).toThrow(/after destroy/);
  });
});
