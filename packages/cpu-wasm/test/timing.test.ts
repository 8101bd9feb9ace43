// Worker-side timing: each task's start and end as the worker saw them (epoch ms), and a step's wall time
// split into start latency + worker span + notice latency. The blocked-main-thread case is the one the
// split exists for: workers done in a moment, the main thread noticing only once it is free.
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, KernelPool, OP, PieceWriter, createSharedMemory, type StepTiming } from '../src/index.js';
import { makeRng, uniform } from './rng.js';

const THREADS = 3;
const N = 1 << 18;
const opt = new AdamW({ threads: THREADS, minElementsPerThread: 1024 });
opt.addParam('w', new Float32Array(N));
opt.addStepOnly('s', N);
const rng = makeRng(7);
afterAll(() => opt.destroy());

function setGradients(): void {
  opt.grad('w').set(uniform(rng, N));
  opt.grad('s').set(uniform(rng, N));
}

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Consistent whatever the machine's speed: the latencies and the span tile the wall time. */
function expectConsistent(t: StepTiming, threads: number): void {
  for (const v of Object.values(t)) expect(Number.isFinite(v)).toBe(true);
  expect(t.tasks).toBeGreaterThan(0);
  expect(t.startLatencyMs).toBeGreaterThanOrEqual(0);
  expect(t.noticeLatencyMs).toBeGreaterThanOrEqual(0);
  expect(t.workerSpanMs).toBeGreaterThan(0);
  expect(t.workerSpanMs).toBeLessThanOrEqual(t.wallMs + 1e-6);
  expect(t.startLatencyMs + t.workerSpanMs + t.noticeLatencyMs).toBeCloseTo(t.wallMs, 6);
  expect(t.threadBusyMs).toBeGreaterThan(0);
  expect(t.threadBusyMs).toBeLessThanOrEqual(threads * t.workerSpanMs + 1e-6);
}

describe('step timing', () => {
  it('splits the wall time of checked, unchecked and skipped steps', async () => {
    for (const nonFinite of ['throw', 'propagate'] as const) {
      setGradients();
      const before = epochNow();
      const r = await opt.step({ nonFinite });
      const after = epochNow();
      expect(r.applied).toBe(true);
      expectConsistent(r.timing, THREADS);
      // checked: one group task per thread; unchecked: the stream's pieces (2 per tensor of 2^18)
      expect(r.timing.tasks).toBe(nonFinite === 'throw' ? THREADS : 4);
      expect(r.timing.wallMs).toBeLessThanOrEqual(after - before);
    }
    setGradients();
    expect((await opt.step({ threads: 1 })).timing.tasks).toBe(1);
    // a skipped step runs the group, then the count that names the tensors: both are timed
    opt.grad('s')[5] = NaN;
    const skipped = await opt.step({ nonFinite: 'skip' });
    expect(skipped.applied).toBe(false);
    expectConsistent(skipped.timing, THREADS);
    expect(skipped.timing.tasks).toBe(2 * THREADS);
  });

  it('reports zeros but the wall time when there is nothing to run', async () => {
    const empty = new AdamW({ threads: 2, nonFinite: 'propagate' });
    empty.addStepOnly('none', 0);
    const t = (await empty.step()).timing;
    expect(t).toMatchObject({ workerSpanMs: 0, startLatencyMs: 0, noticeLatencyMs: 0, threadBusyMs: 0 });
    expect(t.tasks).toBe(0);
    expect(t.wallMs).toBeGreaterThanOrEqual(0);
    await empty.destroy();
  });

  it('puts a main thread that is busy when the workers finish into the notice latency', async () => {
    setGradients();
    await opt.step({ nonFinite: 'propagate' }); // warm: kernel instances, pages
    const BLOCK_MS = 50;
    // 'propagate' (as the trainer steps) dispatches inside step(): the workers start right away
    const pending = opt.step({ nonFinite: 'propagate' });
    const until = performance.now() + BLOCK_MS;
    while (performance.now() < until); // the main thread's event loop is busy, as with GPU work
    const t = (await pending).timing;
    expectConsistent(t, THREADS);
    expect(t.wallMs).toBeGreaterThanOrEqual(BLOCK_MS);
    expect(t.noticeLatencyMs).toBeGreaterThanOrEqual(BLOCK_MS - 10);
    // the workers did not wait for the main thread: their span is the step's work alone
    expect(t.startLatencyMs).toBeLessThan(10);
    expect(t.workerSpanMs).toBeLessThan(BLOCK_MS / 2);
  });
});

describe('KernelPool timing', () => {
  const pool = new KernelPool({ threads: 2 });
  const mem = createSharedMemory(4 << 20);
  const id = pool.attach(mem);
  afterAll(() => pool.destroy());
  const at = pool.firstFreeByte;
  new Float32Array(mem.buffer, at, 1000).fill(1);

  it('times each task of run and each of a group on its worker', async () => {
    const w = new PieceWriter();
    w.push(OP.SUM_SQUARES_F32, id, 1000, at);
    const pieces = w.finish();
    const before = epochNow();
    const r = await pool.runTimed({ pieces });
    const after = epochNow();
    expect([...r.values]).toEqual([1000]);
    expect(r.timing.startMs).toBeGreaterThanOrEqual(before);
    expect(r.timing.endMs).toBeGreaterThanOrEqual(r.timing.startMs);
    expect(r.timing.endMs).toBeLessThanOrEqual(after);

    const g = await pool.runGroup(
      [
        { checks: pieces, pieces: new Float64Array(0) },
        { checks: pieces, pieces: new Float64Array(0) },
      ],
      { hypers: new Float64Array(0), skipNonFinite: true },
    );
    const done = epochNow();
    expect(g.sumOfSquares).toBe(2000);
    expect(g.timing.tasks).toBe(2);
    expect(g.timing.firstStartMs).toBeGreaterThanOrEqual(after);
    expect(g.timing.lastEndMs).toBeLessThanOrEqual(done);
    expect(g.timing.busyMs).toBeLessThanOrEqual(2 * (g.timing.lastEndMs - g.timing.firstStartMs) + 1e-6);
  });
});
