// The low-level pool: workers instantiate the kernels once per shared memory they are sent and run
// flat piece lists on raw offsets (no tensor data crosses threads), read from shared mailboxes; groups
// meet at a barrier between a sum-of-squares phase and the rest.
import { afterAll, describe, expect, it } from 'vitest';
import { KernelPool, OP, PieceWriter, createSharedMemory } from '../src/index.js';
import { clipCoefficient } from '../src/protocol.js';
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

  it('queues more tasks than workers and grows a mailbox for a long task', async () => {
    const at = pool.firstFreeByte;
    const n = 3001;
    const x = new Float32Array(memB.buffer, at, n);
    for (let i = 0; i < n; i++) x[i] = (i % 7) - 3;
    const tasks = Array.from({ length: 7 }, (_, t) => {
      const w = new PieceWriter();
      // task t: one piece per element of its range (2000+ pieces in the last: past the first mailbox)
      const count = t === 6 ? 2500 : 10 + t;
      for (let i = 0; i < count; i++) w.push(OP.SUM_SQUARES_F32, idB, 1, at + 4 * ((t * 17 + i) % n));
      return { count, t, run: pool.run({ pieces: w.finish() }) };
    });
    for (const { count, t, run } of tasks) {
      const got = await run;
      expect(got.length).toBe(count);
      for (let i = 0; i < count; i++) expect(got[i]).toBe(x[(t * 17 + i) % n]! ** 2);
    }
  });

  it('reports a failing task without losing the worker', async () => {
    const w = new PieceWriter();
    w.push(99 as never, idA, 1, pool.firstFreeByte);
    await expect(pool.run({ pieces: w.finish() })).rejects.toThrow(
      /cpu-wasm worker \d: Error: cpu-wasm worker: unknown opcode 99/,
    );
    const ok = new PieceWriter();
    ok.push(OP.COUNT_NONFINITE_F32, idA, 1, pool.firstFreeByte);
    expect([...(await pool.run({ pieces: ok.finish() }))]).toEqual([0]);
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

describe('KernelPool groups', () => {
  const group = new KernelPool({ threads: 3 });
  const mem = createSharedMemory(4 << 20);
  const id = group.attach(mem);
  afterAll(() => group.destroy());
  const at = group.firstFreeByte;
  const n = 1000;
  const g = new Float32Array(mem.buffer, at, n);
  const y = new Float32Array(mem.buffer, at + 4096, n);

  /** Task i: the sum of squares of g's i-th third (as 1 to 3 blocks), then y += a * g over that third. */
  function tasks(parties: number): { checks: Float64Array; pieces: Float64Array }[] {
    const part = Math.ceil(n / parties);
    return Array.from({ length: parties }, (_, i) => {
      const s = i * part;
      const len = Math.max(0, Math.min(part, n - s));
      const checks = new PieceWriter();
      for (let b = 0; b < len; b += 128)
        checks.push(OP.SUM_SQUARES_F32, id, Math.min(128, len - b), at + 4 * (s + b));
      const pieces = new PieceWriter();
      pieces.push(OP.AXPY_F32, id, len, at + 4096 + 4 * s, at + 4 * s, 0, 0, 0);
      return { checks: checks.finish(), pieces: pieces.finish() };
    });
  }
  const hypers = (a: number): Float64Array => new Float64Array([a, 0, 0, 0, 0, 0, 0, 0, 1]);

  it('adds every block in one order on all workers, then runs phase 2 everywhere', async () => {
    const rng = makeRng(3);
    g.set(uniform(rng, n));
    y.fill(1);
    let want = 0;
    const part = Math.ceil(n / 3);
    for (let i = 0; i < 3; i++)
      for (let b = i * part; b < Math.min(n, (i + 1) * part); b += 128) {
        let s = 0;
        for (let k = b; k < Math.min(b + 128, (i + 1) * part, n); k++) s += g[k]! * g[k]!;
        want += s;
      }
    const r = await group.runGroup(tasks(3), { hypers: hypers(0.5), skipNonFinite: true });
    expect(r.applied).toBe(true);
    expect(r.sumOfSquares).toBeCloseTo(want, 9);
    for (let i = 0; i < n; i++)
      if (y[i] !== Math.fround(1 + Math.fround(0.5 * g[i]!))) expect.fail(`y[${i}]`);
  });

  it('skips phase 2 everywhere when one block is not finite; passes the clip to every worker', async () => {
    g.fill(2);
    g[n - 1] = Number.POSITIVE_INFINITY; // in the last task's share
    y.fill(1);
    const skipped = await group.runGroup(tasks(3), { hypers: hypers(1), skipNonFinite: true });
    expect(skipped).toMatchObject({ applied: false, sumOfSquares: Infinity });
    expect(y.every((v) => v === 1)).toBe(true);
    g.fill(2); // norm 2 sqrt(n): clipping to norm 1 scales by 1 / (2 sqrt(n) + 1e-6)
    const clip = { maxGradNorm: 1, gradScale: 1 };
    const r = await group.runGroup(tasks(2), {
      hypers: new Float64Array([1, 0, 0, 0, 0, 0, 0, 0, 1]),
      skipNonFinite: true,
      clip,
    });
    expect(r.sumOfSquares).toBe(4 * n);
    // axpy reads its scalar from field 0, not the gradient scale: the clip rewrote field 8 only
    for (let i = 0; i < n; i++) if (y[i] !== 3) expect.fail(`y[${i}] = ${y[i]}`);
    expect(clipCoefficient(4 * n, 1, 1)).toBeCloseTo(1 / (2 * Math.sqrt(n)), 9);
  });

  it('a failure in one worker fails the group and stops the others before phase 2', async () => {
    g.fill(1);
    y.fill(5);
    const bad = tasks(3);
    const w = new PieceWriter();
    w.push(99 as never, id, 1, at);
    bad[1] = { checks: w.finish(), pieces: bad[1]!.pieces };
    await expect(group.runGroup(bad, { hypers: hypers(1), skipNonFinite: true })).rejects.toThrow(
      /unknown opcode 99/,
    );
    expect(y.every((v) => v === 5)).toBe(true);
    // and the pool goes on
    const r = await group.runGroup(tasks(3), { hypers: hypers(1), skipNonFinite: true });
    expect(r.applied).toBe(true);
    expect(y.every((v) => v === 6)).toBe(true);
  });

  it('refuses more tasks than workers', async () => {
    await expect(group.runGroup(tasks(4), { hypers: hypers(1), skipNonFinite: true })).rejects.toThrow(
      /a group needs 1 to 3 tasks, got 4/,
    );
  });
});
