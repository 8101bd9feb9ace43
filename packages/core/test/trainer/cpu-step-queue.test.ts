// The CPU step queue on a real cpu-wasm optimizer: steps start when asked for (not when the previous
// one has been noticed), a step naming a tensor still being stepped waits for it, each step gets the
// learning rate of its own trainer step, and overlapping steps' time is counted once.
import { AdamW } from '@lsp-offload/cpu-wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuStepQueue } from '../../src/trainer/cpu-step-queue.js';

const N = 300_001;
/** The trainer step each tensor's lr was asked for, in the order the optimizer asked. */
const asked: [string, number][] = [];
const opt = new AdamW({
  threads: 2,
  nonFinite: 'propagate',
  lrSchedule: ({ name }) => {
    asked.push([name, queue.stepOfGradients]);
    return 1e-3;
  },
});
for (const name of ['a', 'b', 'c']) {
  opt.addParam(name, new Float32Array(N).fill(1));
  opt.grad(name).fill(0.5);
}
const queue = new CpuStepQueue(opt);
afterAll(() => opt.destroy());

describe('CpuStepQueue', () => {
  it('starts every step at its call, waits only for a step on the same tensor', async () => {
    const a = queue.step(['a'], undefined, 'A', 1, {}, 7);
    const b = queue.step(['b', 'c'], undefined, 'B', 1, {}, 8);
    // both were handed to the optimizer before either resolved, each with its own trainer step
    expect(asked).toEqual([
      ['a', 7],
      ['b', 8],
      ['c', 8],
    ]);
    const again = queue.step(['a'], undefined, 'A again', 1, {}, 9);
    expect(asked.length).toBe(3); // waits for A instead of being refused by the optimizer
    const own: number[] = [];
    const d = queue.step(['c'], undefined, 'C', 1, {}, 9, (ms) => own.push(ms));
    const walls = await Promise.all([a, b, again, d]);
    expect(asked.slice(3)).toEqual([
      ['a', 9],
      ['c', 9],
    ]);
    expect(opt.info('a').steps).toBe(2);
    expect(opt.info('b').steps).toBe(1);
    // time with a step in flight, counted once: at most the sum of the walls, at least the longest
    const t = queue.timing;
    expect(t.steps).toBe(4);
    expect(queue.busyMs).toBeLessThanOrEqual(walls.reduce((x, y) => x + y, 0) + 1e-6);
    expect(queue.busyMs).toBeGreaterThanOrEqual(Math.max(...walls) - 1e-6);
    expect(t.wallMs).toBeCloseTo(queue.busyMs, 6);
    expect(t.startLatencyMs + t.workerSpanMs + t.noticeLatencyMs).toBeCloseTo(t.wallMs, 6);
    expect(t.workerSpanMs).toBeGreaterThan(0);
    expect(t.threadBusyMs).toBeGreaterThan(0);
    expect(own.length).toBe(1);
    expect(own[0]!).toBeLessThanOrEqual(walls[3]! + 1e-6);
  });
});
