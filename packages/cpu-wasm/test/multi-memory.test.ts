// Tensors spread over several shared memories (a lowered per-memory cap) give the same bits as one memory.
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW } from '../src/index.js';
import {
  gradientFor,
  register,
  snapshot,
  snapshotsEqual,
  writeGradients,
  type TensorCase,
} from './helpers.js';

const CAP = 512 * 1024; // 192 KiB reserved (module + 2 worker stacks), 320 KiB for tensors
const cases: TensorCase[] = [
  ...[0, 1, 2, 3, 4, 5].map((i): TensorCase => ({
    name: `p${i}`,
    kind: 'param',
    length: 3001 + 2 * i,
    gradDtype: 'f32',
    outDtype: 'f32',
    group: 'default',
  })),
  { name: 'big', kind: 'param', length: 50_001, gradDtype: 'f32', outDtype: 'f32', group: 'default' },
  { name: 'bigStep', kind: 'stepOnly', length: 30_003, gradDtype: 'f16', outDtype: 'f16', group: 'default' },
];
const names = cases.map((c) => c.name);

describe('multi-memory', () => {
  const small = new AdamW({ threads: 2, memoryCapBytes: CAP, minElementsPerThread: 32 });
  const single = new AdamW({ threads: 2, minElementsPerThread: 32 });
  afterAll(() => Promise.all([small.destroy(), single.destroy()]));
  register(small, cases, 5);
  register(single, cases, 5);

  it('places tensors in several memories and splits the ones larger than a memory', () => {
    const stats = small.memoryStats();
    expect(stats.memories).toBeGreaterThanOrEqual(4);
    expect(stats.usedBytes.every((b) => b <= CAP)).toBe(true);
    expect(single.memoryStats().memories).toBe(1);
    expect(small.info('big').segments).toBeGreaterThanOrEqual(3);
    expect(small.info('bigStep').segments).toBeGreaterThanOrEqual(2);
    const segs = small.segments('big');
    expect(segs.map((s) => s.start)).toEqual(segs.map((_, i) => i * segs[0]!.length));
    expect(segs.reduce((a, s) => a + s.length, 0)).toBe(50_001);
    expect(() => small.grad('big')).toThrow(/spans \d shared memories; use segments\("big"\)/);
  });

  it('steps to the same bits as a single memory, through setGrad/readParam/readOut', async () => {
    for (let t = 1; t <= 3; t++) {
      writeGradients(small, cases, 5, t);
      writeGradients(single, cases, 5, t);
      await Promise.all([small.step(), single.step()]);
    }
    expect(snapshotsEqual(snapshot(small, names), snapshot(single, names))).toEqual([]);
    expect(small.readParam('big')).toEqual(single.param('big'));
    expect(small.readOut('bigStep')).toEqual(single.readOut('bigStep'));
  });

  it('finds non-finite gradients in any segment', async () => {
    const g = gradientFor(cases[6]!, 5, 9).raw as Float32Array;
    g[50_000] = NaN;
    small.setGrad('big', g);
    await expect(small.step()).rejects.toThrow(/big \(1\)/);
  });

  it('works at byte offsets above 2 GiB (pointers that are negative as i32)', async () => {
    const high = new AdamW({ threads: 2, memoryCapBytes: 2 ** 32, minElementsPerThread: 32 });
    const low = new AdamW({ threads: 1 });
    try {
      high.addStepOnly('filler', 160 * 2 ** 20); // 2.5 GiB that is never touched, so never backed by RAM
      for (const o of [high, low]) register(o, cases.slice(0, 1), 5);
      expect(high.segments('p0')[0]!.param!.byteOffset).toBeGreaterThan(2 ** 31);
      for (const o of [high, low]) o.setGrad('p0', gradientFor(cases[0]!, 5, 1).raw);
      await Promise.all([high.step({ names: ['p0'] }), low.step()]);
      expect(high.param('p0')).toEqual(low.param('p0'));
      expect(high.expAvgSq('p0')).toEqual(low.expAvgSq('p0'));
    } finally {
      await Promise.all([high.destroy(), low.destroy()]);
    }
  });

  it('exchanges state dicts with a single-memory optimizer (the layout is not part of the format)', async () => {
    single.loadStateDict(small.stateDict().slice());
    expect(snapshotsEqual(snapshot(small, names, false), snapshot(single, names, false))).toEqual([]);
    small.loadStateDict(single.stateDict());
    expect(snapshotsEqual(snapshot(small, names, false), snapshot(single, names, false))).toEqual([]);
  });
});
