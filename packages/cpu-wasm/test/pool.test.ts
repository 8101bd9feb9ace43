// The low-level pool: workers instantiate the kernels once per shared memory they are sent and run
// flat piece lists on raw offsets (no tensor data crosses threads).
import { afterAll, describe, expect, it } from 'vitest';
import { KernelPool, OP, PieceWriter, createSharedMemory } from '../src/index.js';
import { makeRng, uniform } from './rng.js';

const pool = new KernelPool({ threads: 2 });
const memA = createSharedMemory(4 << 20);
const memB = createSharedMemory(4 << 20);
const idA = pool.attach(memA);
const idB = pool.attach(memB);
afterAll(() => pool.destroy());

describe('KernelPool', () => {
  it('runs axpy split across two workers and two memories', async () => {
    const n = 100_001;
    const at = pool.firstFreeByte;
    const rng = makeRng(1);
    const inputs = [memA, memB].map((m) => {
      const x = new Float32Array(m.buffer, at, n);
      const y = new Float32Array(m.buffer, at + 4 * n + 64, n);
      x.set(uniform(rng, n));
      y.set(uniform(rng, n));
      return { x, y, y0: Float64Array.from(y) };
    });
    const a = Math.fround(0.37);
    const half = 50_016; // a multiple of 16: the second piece starts on a cache line
    const tasks = [idA, idB].flatMap((id) =>
      [
        [0, half],
        [half, n - half],
      ].map(([s, len]) => {
        const w = new PieceWriter();
        w.push(OP.AXPY_F32, id, len!, at + 4 * n + 64 + 4 * s!, at + 4 * s!, 0, 0, 0);
        return pool.run({ pieces: w.finish(), hypers: new Float64Array([a, 0, 0, 0, 0, 0, 0, 0, 0]) });
      }),
    );
    await Promise.all(tasks);
    for (const { x, y, y0 } of inputs)
      for (let i = 0; i < n; i++)
        if (y[i] !== Math.fround(y0[i]! + Math.fround(a * x[i]!))) expect.fail(`y[${i}]`);
  });

  it('returns one result per piece', async () => {
    const at = pool.firstFreeByte;
    new Float32Array(memA.buffer, at, 5).set([1, 2, 3, 4, 5]);
    const w = new PieceWriter();
    w.push(OP.SUM_SQUARES_F32, idA, 5, at);
    w.push(OP.SUM_SQUARES_F32, idA, 2, at + 12);
    w.push(OP.COUNT_NONFINITE_F32, idA, 5, at);
    expect([...(await pool.run({ pieces: w.finish() }))]).toEqual([55, 41, 0]);
  });

  it('refuses unknown memories, unshared memories and use after destroy', async () => {
    const w = new PieceWriter();
    w.push(OP.SUM_SQUARES_F32, 7, 1, 0);
    expect(() => pool.run({ pieces: w.finish() })).toThrow(/no attached memory with id 7/);
    expect(() => pool.attach(new WebAssembly.Memory({ initial: 64 }))).toThrow(/shared/);
    const p = new KernelPool({ threads: 1 });
    await p.destroy();
    expect(() => p.attach(memA)).toThrow(/after destroy/);
  });
});
