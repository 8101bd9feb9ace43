// Per-tensor gradient factors (step's gradScales) and touchMemory(). An fp16 gradient sent with a
// power-of-two scale s (values h = g * s) and stepped with gradScales {name: 1/s} must give exactly what
// the fp32 path gives for the gradient h / s: the same bits, for params and step-only tensors, checked or
// not, on 1 and 3 threads.
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, floatToHalf, halfToFloat, type NonFinitePolicy } from '../src/index.js';
import { makeRng, uniform } from './rng.js';
import { snapshot, snapshotsEqual } from './helpers.js';

const LENGTHS = { p: 1003, s: 517, q: 9 } as const;
// the scale each tensor's fp16 gradient travels with (powers of two, far apart)
const SCALES = { p: 2 ** 14, s: 2 ** -3, q: 2 ** 20 } as const;
type Name = keyof typeof LENGTHS;
const NAMES = Object.keys(LENGTHS) as Name[];

function optimizer(threads: number, dtype: 'f16' | 'f32', nonFinite: NonFinitePolicy): AdamW {
  const opt = new AdamW({ threads, lr: 3e-3, weightDecay: 0.05, minElementsPerThread: 32, nonFinite });
  const rng = makeRng(11);
  opt.addParam('p', uniform(rng, LENGTHS.p), { gradDtype: dtype, paramF16: true });
  opt.addStepOnly('s', LENGTHS.s, { gradDtype: dtype, outDtype: 'f16' });
  opt.addParam('q', uniform(rng, LENGTHS.q), { gradDtype: dtype });
  return opt;
}

/** Step t's fp16 gradient bits of a tensor (a gradient of magnitude ~1/scale, sent times scale). */
function halfGradient(name: Name, t: number): Uint16Array {
  const g = uniform(makeRng(1000 * t + LENGTHS[name]), LENGTHS[name], 1.7);
  return Uint16Array.from(g, (v) => floatToHalf(v));
}

describe('per-tensor gradient factors', () => {
  const opened: AdamW[] = [];
  afterAll(async () => {
    for (const o of opened) await o.destroy();
  });

  for (const threads of [1, 3])
    for (const policy of ['propagate', 'skip'] as const)
      it(`fp16 gradients with 1/scale factors equal fp32 gradients h / scale (${threads} threads, ${policy})`, async () => {
        const half = optimizer(threads, 'f16', policy);
        const full = optimizer(threads, 'f32', policy);
        opened.push(half, full);
        for (let t = 1; t <= 4; t++) {
          const gradScales: Record<string, number> = {};
          for (const name of NAMES) {
            const h = halfGradient(name, t);
            half.setGrad(name, h);
            full.setGrad(
              name,
              Float32Array.from(h, (b) => halfToFloat(b) / SCALES[name]),
            );
            gradScales[name] = 1 / SCALES[name];
          }
          // a step factor on top (1 / micro-batches), as the trainer passes both
          const a = await half.step({ gradScale: 0.5, gradScales });
          const b = await full.step({ gradScale: 0.5 });
          expect(a.applied && b.applied).toBe(true);
        }
        expect(snapshotsEqual(snapshot(half, NAMES), snapshot(full, NAMES))).toEqual([]);
        expect(half.readParamF16('p')).toEqual(full.readParamF16('p'));
        // and the steps moved something: the factors reached the kernel, not only the check
        expect(half.readOut('s').some((v) => v !== 0)).toBe(true);
      });

  it('factors apply only to the named tensors; others get 1', async () => {
    const a = new AdamW({ threads: 2, lr: 1e-2, weightDecay: 0, minElementsPerThread: 32 });
    const b = new AdamW({ threads: 2, lr: 1e-2, weightDecay: 0, minElementsPerThread: 32 });
    opened.push(a, b);
    const g = uniform(makeRng(3), 77);
    for (const o of [a, b]) {
      o.addStepOnly('x', 77);
      o.addStepOnly('y', 77);
      o.setGrad('x', g);
      o.setGrad('y', g);
    }
    await a.step({ gradScales: { x: 0.25 } });
    b.setGrad(
      'x',
      Float32Array.from(g, (v) => v * 0.25),
    );
    await b.step();
    expect(a.readOut('x')).toEqual(b.readOut('x'));
    expect(a.readOut('y')).toEqual(b.readOut('y'));
  });

  it('refuses factors for tensors the step does not update, non-finite factors and clipping', async () => {
    const o = new AdamW({ threads: 1 });
    const clipped = new AdamW({ threads: 1, maxGradNorm: 1 });
    opened.push(o, clipped);
    o.addStepOnly('x', 5);
    o.addStepOnly('y', 5);
    clipped.addStepOnly('x', 5);
    await expect(o.step({ names: ['x'], gradScales: { y: 2 } })).rejects.toThrow(/"y", which this step/);
    await expect(o.step({ gradScales: { x: Number.NaN } })).rejects.toThrow(/gradScales\["x"\]/);
    await expect(clipped.step({ gradScales: { x: 2 } })).rejects.toThrow(/maxGradNorm/);
    expect(o.info('x').steps).toBe(0);
  });
});

describe('touchMemory', () => {
  it('writes every page once and changes no value', async () => {
    const opt = new AdamW({ threads: 2, lr: 1e-2, minElementsPerThread: 32 });
    const rng = makeRng(5);
    opt.addParam('w', uniform(rng, 70_001), { paramF16: true });
    opt.addStepOnly('s', 40_003, { gradDtype: 'f16', outDtype: 'f16' });
    opt.setGrad('w', uniform(rng, 70_001));
    opt.setGrad('s', Uint16Array.from(uniform(rng, 40_003), floatToHalf));
    await opt.step();
    const before = snapshot(opt, ['w', 's']);
    const gradBefore = opt.grad('w').slice();
    const bytes = opt.touchMemory();
    expect(bytes).toBe(opt.memoryStats().usedBytes.reduce((a, b) => a + b, 0));
    expect(bytes).toBeGreaterThan(70_001 * 18 + 40_003 * 12);
    expect(snapshotsEqual(before, snapshot(opt, ['w', 's']))).toEqual([]);
    expect(opt.grad('w')).toEqual(gradBefore);
    await opt.destroy();
    expect(() => opt.touchMemory()).toThrow();
  });
});
