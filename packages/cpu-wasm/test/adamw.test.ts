// The sharded optimizer against a float64 AdamW reference over 1, 10 and 100 steps, for several thread
// counts, every tensor kind and dtype; and the same bits whatever the thread count.
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, floatToHalf } from '../src/index.js';
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
} from './helpers.js';
import { adamwStep32, adamwStep64, maxRelErr, rms, sameBits, type RefState } from './reference.js';
import { makeRng, uniform } from './rng.js';

const SEED = 42;
const CHECKPOINTS = [1, 10, 100];
const snapshots = new Map<number, Map<string, Uint8Array>>();
const names = CASES.map((c) => c.name);

/**
 * Tolerances: after 1 step every element within 1e-6 relative. Later ones allow what t steps of f32
 * rounding add up to (each step rounds p twice, ~2^-24 each, often in the same direction); the fp32
 * emulation check below shows these errors are f32 arithmetic, not the kernels.
 */
function tolerance(t: number): { p: number; mv: number; out: number } {
  if (t === 1) return { p: 1e-6, mv: 1e-6, out: 1e-6 };
  return { p: t * 1.2e-7, mv: 2e-5, out: 2e-5 };
}

describe.each([1, 2, 3])('AdamW on %i thread(s) matches float64 AdamW', (threads) => {
  const opt = new AdamW({ ...BASE_OPTIONS, threads });
  register(opt, CASES, SEED);
  const ref = new Map<string, RefState>(
    CASES.map((c) => [
      c.name,
      {
        p: c.kind === 'param' ? Float64Array.from(initialParams(c, SEED)) : null,
        m: new Float64Array(c.length),
        v: new Float64Array(c.length),
      },
    ]),
  );
  const lastStep = new Map<string, Float64Array>();
  // The fp32 classic tensors also follow the kernel's exact operation sequence, bit for bit.
  const exact = CASES.filter((c) => c.kind === 'param' && c.gradDtype === 'f32').map((c) => ({
    c,
    p: initialParams(c, SEED),
    m: new Float32Array(c.length),
    v: new Float32Array(c.length),
  }));
  afterAll(() => opt.destroy());

  let done = 0;
  for (const upTo of CHECKPOINTS) {
    it(`after ${upTo} step(s)`, async () => {
      for (let t = done + 1; t <= upTo; t++) {
        writeGradients(opt, CASES, SEED, t);
        const report = await opt.step();
        expect(report.applied).toBe(true);
        for (const c of CASES)
          lastStep.set(
            c.name,
            adamwStep64(ref.get(c.name)!, gradientFor(c, SEED, t).value, refHyper(c.group), t),
          );
        for (const e of exact)
          adamwStep32(e.p, e.m, e.v, gradientFor(e.c, SEED, t).value, refHyper(e.c.group), t);
      }
      done = upTo;
      for (const e of exact) {
        expect(sameBits(opt.param(e.c.name), e.p), `${e.c.name}: fp32 emulation`).toBe(true);
        expect(sameBits(opt.expAvgSq(e.c.name), e.v), `${e.c.name}: fp32 emulation`).toBe(true);
      }
      const tol = tolerance(upTo);
      for (const c of CASES) {
        const r = ref.get(c.name)!;
        const where = `${c.name} after ${upTo} steps`;
        expect(opt.info(c.name).steps, where).toBe(upTo);
        if (c.kind === 'param')
          expect(maxRelErr(opt.param(c.name), r.p!).err, `${where}: param`).toBeLessThan(tol.p);
        // After one step m and v are pure products (no cancellation): plain relative error. Later,
        // m mixes signs, so its error is judged against the tensor's typical size.
        const floorM = upTo === 1 ? 0 : rms(r.m);
        const floorV = upTo === 1 ? 0 : rms(r.v);
        expect(maxRelErr(opt.expAvg(c.name), r.m, floorM).err, `${where}: exp_avg`).toBeLessThan(tol.mv);
        expect(maxRelErr(opt.expAvgSq(c.name), r.v, floorV).err, `${where}: exp_avg_sq`).toBeLessThan(tol.mv);
        if (c.kind === 'stepOnly') {
          const want = lastStep.get(c.name)!;
          const got = opt.readOut(c.name);
          if (c.outDtype === 'f32') {
            const floor = upTo === 1 ? 0 : rms(want);
            expect(maxRelErr(got, want, floor).err, `${where}: step`).toBeLessThan(tol.out);
          } else {
            // fp16 output: the correctly rounded half of the reference, give or take one half ulp
            const bits = opt.outF16(c.name);
            let worst = 0;
            for (let i = 0; i < c.length; i++)
              worst = Math.max(worst, Math.abs(bits[i]! - floatToHalf(want[i]!)));
            expect(worst, `${where}: fp16 step (ulps)`).toBeLessThanOrEqual(1);
          }
        }
      }
      if (upTo === 100) snapshots.set(threads, snapshot(opt, names));
    });
  }
});

describe('determinism', () => {
  it('gives the same bits on 1, 2 and 3 threads', () => {
    expect(snapshots.size).toBe(3);
    expect(snapshotsEqual(snapshots.get(1)!, snapshots.get(2)!)).toEqual([]);
    expect(snapshotsEqual(snapshots.get(1)!, snapshots.get(3)!)).toEqual([]);
  });

  it('clips by the global norm the same way on 1 and 3 threads (norm spans several blocks)', async () => {
    const big = 40_001;
    const results: Array<Map<string, Uint8Array>> = [];
    const norms: number[] = [];
    for (const threads of [1, 3]) {
      const opt = new AdamW({ threads, lr: 1e-2, maxGradNorm: 0.5, minElementsPerThread: 1024 });
      const rng = makeRng(3);
      opt.addParam('a', uniform(rng, big));
      opt.addParam('b', uniform(rng, 77));
      opt.setGrad('a', uniform(rng, big));
      opt.setGrad('b', uniform(rng, 77, 10));
      const r = await opt.step();
      norms.push(r.gradNorm!);
      expect(r.clipCoef).toBeLessThan(1);
      results.push(snapshot(opt, ['a', 'b']));
      await opt.destroy();
    }
    expect(norms[0]).toBe(norms[1]);
    expect(snapshotsEqual(results[0]!, results[1]!)).toEqual([]);
  });
});

describe('step options and hooks', () => {
  const opt = new AdamW({ threads: 2, lr: 1e-2, weightDecay: 0, minElementsPerThread: 32 });
  afterAll(() => opt.destroy());
  const n = 301;
  const rng = makeRng(8);
  const p0 = uniform(rng, n);
  opt.addParam('x', p0);
  opt.addParam('y', p0);
  opt.addStepOnly('s', n);

  it('steps only the named tensors; each keeps its own step count for bias correction', async () => {
    const g = uniform(rng, n);
    opt.setGrad('x', g);
    opt.setGrad('y', g);
    await opt.step({ names: ['x'] });
    expect(opt.readParam('y')).toEqual(p0);
    expect(opt.info('x').steps).toBe(1);
    expect(opt.info('y').steps).toBe(0);
    await opt.step({ names: ['y'] }); // y's first step: same as x's first
    expect(opt.readParam('y')).toEqual(opt.readParam('x'));
    expect(opt.stepCount).toBe(2);
  });

  it('gradScale multiplies the gradients before the update (and the reported norm)', async () => {
    const g = uniform(rng, n);
    opt.setGrad('s', g);
    const scaled = Float32Array.from(g, (v) => v * 0.5); // exact: a power of two
    const r1 = await opt.step({ names: ['s'], gradScale: 0.5 });
    const step1 = opt.readOut('s');
    const ref = new AdamW({ threads: 1, lr: 1e-2, weightDecay: 0 });
    ref.addStepOnly('s', n);
    ref.setGrad('s', scaled);
    const r2 = await ref.step();
    expect(step1).toEqual(ref.readOut('s'));
    expect(r1.gradNorm).toBeCloseTo(r2.gradNorm!, 12);
    await ref.destroy();
  });

  it('accepts empty tensors and steps with nothing to do', async () => {
    const e = new AdamW({ threads: 2 });
    e.addParam('none', []);
    e.addStepOnly('nothing', 0, { outDtype: 'f16' });
    expect(e.param('none').length).toBe(0);
    expect(e.outF16('nothing').length).toBe(0);
    expect((await e.step()).applied).toBe(true);
    expect(e.info('none').steps).toBe(1);
    expect(e.readParam('none')).toEqual(new Float32Array(0));
    await e.destroy();
  });

  it('uses the lrSchedule per tensor step and setHyperParams from the next step on', async () => {
    const seen: number[] = [];
    const sched = new AdamW({
      threads: 1,
      lr: 0.1,
      weightDecay: 0,
      lrSchedule: ({ step, baseLr }) => {
        seen.push(step);
        return baseLr * 0.5 ** step;
      },
    });
    sched.addStepOnly('s', 3);
    for (let t = 0; t < 3; t++) {
      sched.setGrad('s', new Float32Array([1, -1, 2]));
      await sched.step();
      // constant gradient: mhat / sqrt(vhat) = sign(g) exactly in float64, so the step is -lr * sign
      expect(sched.readOut('s')[0]).toBeCloseTo(-0.1 * 0.5 ** t, 6);
    }
    expect(seen).toEqual([0, 1, 2]);
    sched.setHyperParams('default', { lr: 7 });
    expect(sched.hyperParams().lr).toBe(7);
    sched.setGrad('s', new Float32Array([1, -1, 2]));
    await sched.step();
    expect(sched.readOut('s')[1]).toBeCloseTo(7 * 0.5 ** 3, 5);
    await sched.destroy();
  });
});
