// The pool's shared work stream: pieces the workers claim themselves, several jobs in flight at once, a
// ring small enough to wrap many times, failures, and groups waiting for the stream to drain; then
// AdamW's unchecked steps through it: the same bits as the mailbox path, overlapping steps on disjoint
// tensors, and a step that starts while the main thread is blocked.
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, KernelPool, OP, PieceWriter, createSharedMemory, type AdamWOptions } from '../src/index.js';
import { STREAM_PIECE_ELEMENTS } from '../src/plan.js';
import {
  BASE_OPTIONS,
  CASES,
  gradientFor,
  initialParams,
  refHyper,
  register,
  snapshot,
  snapshotsEqual,
  writeGradients,
  type TensorCase,
} from './helpers.js';
import { adamwStep32, adamwStep64, maxRelErr, sameBits } from './reference.js';
import { makeRng, uniform } from './rng.js';

const N = 4099;
/** Element i of y: y0[i] + a * x[i] applied `times` times, in fp32 (what the axpy kernel does). */
function expectAxpy(y: Float32Array, y0: Float64Array, x: Float32Array, a: number, times: number): void {
  for (let i = 0; i < y.length; i++) {
    let want = Math.fround(y0[i]!);
    for (let t = 0; t < times; t++) want = Math.fround(want + Math.fround(a * x[i]!));
    if (y[i] !== want) expect.fail(`y[${i}] = ${y[i]}, want ${want}`);
  }
}

/** y += a x over [0, n) in pieces of `piece` elements, the scalar in row `row` of the hypers. */
function axpyPieces(id: number, yAt: number, xAt: number, n: number, piece: number, row = 0): Float64Array {
  const w = new PieceWriter();
  for (let s = 0; s < n; s += piece)
    w.push(OP.AXPY_F32, id, Math.min(piece, n - s), yAt + 4 * s, xAt + 4 * s, 0, 0, row);
  return w.finish();
}

const hyperRow = (a: number): number[] => [a, 0, 0, 0, 0, 0, 0, 0, 1];

describe('KernelPool stream', () => {
  // a tiny ring and few job slots: every test below wraps the ring and reuses slots many times
  const pool = new KernelPool({ threads: 3, streamRecords: 4, streamJobs: 2 });
  const mem = createSharedMemory(4 << 20);
  const id = pool.attach(mem);
  afterAll(() => pool.destroy());
  const at = pool.firstFreeByte;
  const rng = makeRng(11);
  const x = new Float32Array(mem.buffer, at, N);
  const ys = [0, 1, 2, 3].map((k) => new Float32Array(mem.buffer, at + (k + 1) * 32768, N));
  x.set(uniform(rng, N));

  it('runs a job larger than the ring, with each piece its own scalar row', async () => {
    const y = ys[0]!;
    y.set(uniform(rng, N));
    const y0 = Float64Array.from(y);
    // 4099 elements in pieces of 64: 65 pieces through a 4-record ring; rows alternate 0 and 1
    const w = new PieceWriter();
    for (let s = 0, k = 0; s < N; s += 64, k++)
      w.push(OP.AXPY_F32, id, Math.min(64, N - s), y.byteOffset + 4 * s, x.byteOffset + 4 * s, 0, 0, k % 2);
    const t = await pool.runStream({
      pieces: w.finish(),
      hypers: new Float64Array([...hyperRow(0.25), ...hyperRow(0.25)]),
    });
    expectAxpy(y, y0, x, 0.25, 1);
    expect(t.tasks).toBe(65);
    expect(t.lastEndMs).toBeGreaterThanOrEqual(t.firstStartMs);
    expect(t.busyMs).toBeLessThanOrEqual(3 * (t.lastEndMs - t.firstStartMs) + 1e-6);
  });

  it('keeps many jobs in flight (more than slots and ring records) and finishes each', async () => {
    // 20 jobs of 9-33 pieces on disjoint targets, issued back to back (jobs may run at once)
    const targets = Array.from({ length: 20 }, (_, k) => {
      const y = new Float32Array(mem.buffer, at + (k + 8) * 32768, N);
      y.set(uniform(rng, N));
      return { y, y0: Float64Array.from(y), a: 0.125 * (k + 1) };
    });
    const runs = targets.map(({ y, a }, k) =>
      pool.runStream({
        pieces: axpyPieces(id, y.byteOffset, x.byteOffset, N, 128 * (1 + (k % 4))),
        hypers: new Float64Array(hyperRow(a)),
      }),
    );
    await Promise.all(runs);
    for (const { y, y0, a } of targets) expectAxpy(y, y0, x, a, 1);
  });

  it('waits with a group until the stream is drained; later jobs wait for the group', async () => {
    const y = ys[0]!;
    y.fill(1);
    const before = pool.runStream({
      pieces: axpyPieces(id, y.byteOffset, x.byteOffset, N, 128),
      hypers: new Float64Array(hyperRow(1)),
    });
    let beforeDone = false;
    void before.then(() => (beforeDone = true));
    const checks = new PieceWriter();
    checks.push(OP.SUM_SQUARES_F32, id, N, y.byteOffset);
    const group = pool.runGroup([{ checks: checks.finish(), pieces: new Float64Array(0) }], {
      hypers: new Float64Array(0),
      skipNonFinite: true,
    });
    const after = pool.runStream({
      pieces: axpyPieces(id, y.byteOffset, x.byteOffset, N, 128),
      hypers: new Float64Array(hyperRow(1)),
    });
    const g = await group;
    expect(beforeDone).toBe(true);
    // the group saw y after the first job and before the second
    let want = 0;
    for (let i = 0; i < N; i++) want += Math.fround(1 + Math.fround(x[i]!)) ** 2;
    expect(g.sumOfSquares).toBeCloseTo(want, 6);
    await after;
    expectAxpy(y, new Float64Array(N).fill(1), x, 1, 2);
  });

  it('reports a failing piece and goes on', async () => {
    const w = new PieceWriter();
    w.push(99 as never, id, 1, at);
    await expect(pool.runStream({ pieces: w.finish() })).rejects.toThrow(/unknown opcode 99/);
    const y = ys[1]!;
    y.fill(2);
    await pool.runStream({
      pieces: axpyPieces(id, y.byteOffset, x.byteOffset, N, 1000),
      hypers: new Float64Array(hyperRow(1)),
    });
    expectAxpy(y, new Float64Array(N).fill(2), x, 1, 1);
    // a mailbox task's failure still gets its own message
    const bad = new PieceWriter();
    bad.push(98 as never, id, 1, at);
    await expect(pool.run({ pieces: bad.finish() })).rejects.toThrow(/unknown opcode 98/);
  });

  it('refuses unknown memories and scalar rows beyond the hypers at the call', () => {
    const w = new PieceWriter();
    w.push(OP.AXPY_F32, 5, 1, at, at);
    expect(() => pool.runStream({ pieces: w.finish() })).toThrow(/no attached memory with id 5/);
    const r = new PieceWriter();
    r.push(OP.AXPY_F32, id, 1, at, at, 0, 0, 1);
    expect(() => pool.runStream({ pieces: r.finish(), hypers: new Float64Array(9) })).toThrow(/scalar row 1/);
  });

  it('rejects jobs left when the pool is destroyed', async () => {
    const p = new KernelPool({ threads: 1, streamRecords: 2, streamJobs: 1 });
    const m = createSharedMemory(4 << 20);
    const mid = p.attach(m);
    const a = p.firstFreeByte;
    const jobs = Array.from({ length: 4 }, () =>
      p.runStream({ pieces: axpyPieces(mid, a, a + 65536, 8192, 64), hypers: new Float64Array(9) }),
    );
    const settled = Promise.allSettled(jobs);
    await p.destroy();
    const outcomes = await settled;
    // whatever had not finished is rejected, nothing hangs
    for (const o of outcomes) if (o.status === 'rejected') expect(String(o.reason)).toMatch(/destroyed/);
  });
});

/** CASES plus tensors cut into several stream pieces (odd lengths: a short last piece). */
const BIG: TensorCase[] = [
  {
    name: 'big',
    kind: 'param',
    length: 2 * STREAM_PIECE_ELEMENTS + 12345,
    gradDtype: 'f32',
    outDtype: 'f32',
    group: 'default',
  },
  {
    name: 'bigS',
    kind: 'stepOnly',
    length: STREAM_PIECE_ELEMENTS + 77,
    gradDtype: 'f16',
    outDtype: 'f16',
    group: 'nodecay',
  },
];
const ALL = [...CASES, ...BIG];
const STEPS = 4;

function unchecked(threads: number, stream: boolean): AdamW {
  const options: AdamWOptions = { ...BASE_OPTIONS, threads, nonFinite: 'propagate', stream };
  const opt = new AdamW(options);
  register(opt, ALL, 5);
  return opt;
}

describe('AdamW unchecked steps through the stream', () => {
  it('give the bits of the mailbox path and of the fp32 emulation on 1-3 threads, near float64', async () => {
    const snaps: { label: string; snap: Map<string, Uint8Array> }[] = [];
    for (const threads of [1, 2, 3])
      for (const stream of [true, false]) {
        const opt = unchecked(threads, stream);
        let tasks = 0;
        for (let t = 1; t <= STEPS; t++) {
          writeGradients(opt, ALL, 5, t);
          const r = await opt.step();
          expect(r.step).toBe(t);
          tasks = r.timing.tasks;
        }
        // the stream cuts fixed pieces (the big ones in 3 and 2, the rest whole) whatever the threads
        if (stream) expect(tasks).toBe(CASES.length + 5);
        snaps.push({
          label: `${threads} thread(s), stream ${stream}`,
          snap: snapshot(
            opt,
            ALL.map((c) => c.name),
          ),
        });
        if (threads === 3 && stream) {
          for (const c of ALL.filter((x) => x.kind === 'param')) {
            const p64 = Float64Array.from(initialParams(c, 5));
            const ref = { p: p64, m: new Float64Array(c.length), v: new Float64Array(c.length) };
            const p32 = initialParams(c, 5);
            const m32 = new Float32Array(c.length);
            const v32 = new Float32Array(c.length);
            for (let t = 1; t <= STEPS; t++) {
              const g = gradientFor(c, 5, t).value;
              adamwStep64(ref, g, refHyper(c.group), t);
              adamwStep32(p32, m32, v32, g, refHyper(c.group), t);
            }
            if (c.gradDtype === 'f32') expect(sameBits(opt.param(c.name), p32), c.name).toBe(true);
            expect(maxRelErr(opt.param(c.name), p64).err, c.name).toBeLessThan(1e-6);
          }
        }
        await opt.destroy();
      }
    for (const { label, snap } of snaps.slice(1))
      expect(snapshotsEqual(snaps[0]!.snap, snap), label).toEqual([]);
  });

  it('runs overlapping steps on disjoint tensors, refuses a tensor still being stepped', async () => {
    const opt = unchecked(3, true);
    const ref = unchecked(1, false);
    for (const o of [opt, ref]) writeGradients(o, ALL, 5, 1);
    const first = ['big', 'w1001', 's33'];
    const second = ALL.map((c) => c.name).filter((n) => !first.includes(n));
    const a = opt.step({ names: first });
    const b = opt.step({ names: second, gradScale: 0.5 });
    await expect(opt.step({ names: ['s33'] })).rejects.toThrow(/tensor "s33" is still being stepped/);
    expect(() => opt.stateDict()).toThrow(/a step is still running/);
    await expect(opt.step({ names: ['one'], nonFinite: 'throw' })).rejects.toThrow(/a step is still running/);
    const [ra, rb] = await Promise.all([a, b]);
    // numbered in call order
    expect([ra.step, rb.step]).toEqual([1, 2]);
    expect(opt.stepCount).toBe(2);
    await ref.step({ names: first });
    await ref.step({ names: second, gradScale: 0.5 });
    const names = ALL.map((c) => c.name);
    expect(snapshotsEqual(snapshot(ref, names), snapshot(opt, names))).toEqual([]);
    // and a checked step once they are done
    expect((await opt.step({ nonFinite: 'throw' })).applied).toBe(true);
    await Promise.all([opt.destroy(), ref.destroy()]);
  });

  it('starts a step issued right after another while the main thread is blocked', async () => {
    const opt = unchecked(2, true);
    writeGradients(opt, ALL, 5, 1);
    await opt.step(); // warm: kernel instances, pages
    const BLOCK_MS = 50;
    const a = opt.step({ names: ['big'] });
    const b = opt.step({ names: ['bigS'] });
    const until = epochNow() + BLOCK_MS;
    while (epochNow() < until); // the main thread's event loop is busy, as with GPU work
    const [ra, rb] = await Promise.all([a, b]);
    const bStart = rb.timing.startLatencyMs; // from b's call, in the workers' clock
    // B ran on the workers while the main thread was still blocked: it did not wait for A's notice
    const bCalledAt = until - BLOCK_MS;
    expect(bCalledAt + bStart).toBeLessThan(until);
    expect(rb.timing.workerSpanMs).toBeLessThan(BLOCK_MS);
    expect(ra.timing.noticeLatencyMs + rb.timing.noticeLatencyMs).toBeGreaterThan(0);
    await opt.destroy();
  });
});

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}
