// Bad input is refused with a clear message and changes nothing.
import { afterAll, describe, expect, it } from 'vitest';
import { AdamW, NonFiniteGradientError, OptimizerDestroyedError } from '../src/index.js';
import { snapshot, snapshotsEqual } from './helpers.js';
import { makeRng, uniform } from './rng.js';

const N = 1001;

function fresh(options: ConstructorParameters<typeof AdamW>[0] = {}): AdamW {
  const opt = new AdamW({ threads: 2, minElementsPerThread: 32, ...options });
  const rng = makeRng(1);
  opt.addParam('a', uniform(rng, N));
  opt.addParam('h', uniform(rng, 64), { gradDtype: 'f16' });
  opt.addStepOnly('s', 99);
  opt.setGrad('a', uniform(rng, N));
  opt.setGrad('h', new Uint16Array(64).fill(0x3c00));
  opt.setGrad('s', uniform(rng, 99));
  return opt;
}
const ALL = ['a', 'h', 's'];

describe('registration and views', () => {
  const opt = fresh();
  afterAll(() => opt.destroy());

  it('rejects duplicate names, unknown groups, bad lengths and dtypes', () => {
    expect(() => opt.addParam('a', [1])).toThrow(/"a" is already registered/);
    expect(() => opt.addParam('b', [1], { group: 'nope' })).toThrow(/unknown group "nope"/);
    expect(() => opt.addStepOnly('c', -1)).toThrow(/length must be a non-negative integer/);
    expect(() => opt.addStepOnly('c', 1.5)).toThrow(/length must be a non-negative integer/);
    expect(() => opt.addParam('', [1])).toThrow(/non-empty string/);
    expect(() => opt.addStepOnly('d', 4, { outDtype: 'bf16' as 'f16' })).toThrow(/'f32' or 'f16'/);
    expect(opt.names()).toEqual(ALL);
  });

  it('names unknown tensors, and lists the registered ones', () => {
    expect(() => opt.grad('nope')).toThrow(/unknown tensor "nope" \(registered: "a", "h", "s"\)/);
    expect(() => opt.info('nope')).toThrow(/unknown tensor "nope"/);
  });

  it('refuses views of the wrong kind or dtype', () => {
    expect(() => opt.grad('h')).toThrow(/fp16 gradients: use gradF16/);
    expect(() => opt.gradF16('a')).toThrow(/fp32 gradients: use grad\(\)/);
    expect(() => opt.param('s')).toThrow(/step-only/);
    expect(() => opt.out('a')).toThrow(/no step output/);
    expect(() => opt.outF16('s')).toThrow(/writes fp32 steps: use out\(\)/);
  });

  it('refuses gradients of the wrong length or type', () => {
    expect(() => opt.setGrad('a', new Float32Array(N - 1))).toThrow(
      /setGrad\(\): got 1000 elements, tensor "a" has 1001/,
    );
    expect(() => opt.setGrad('h', new Float32Array(64))).toThrow(
      /tensor "h" has f16 gradients, pass a Uint16Array/,
    );
    expect(() => opt.readParam('a', new Float32Array(3))).toThrow(/Float32Array of 1001 elements/);
  });

  it('rejects invalid options', () => {
    expect(() => new AdamW({ threads: 0 })).toThrow(/threads must be a positive integer/);
    expect(() => new AdamW({ threads: 1, lr: -1 })).toThrow(/lr must be a finite number >= 0/);
    expect(() => new AdamW({ threads: 1, betas: [0.9, 1] })).toThrow(/betas must lie in \[0, 1\)/);
    expect(() => new AdamW({ threads: 1, eps: 0 })).toThrow(/eps must be a finite number > 0/);
    expect(() => new AdamW({ threads: 1, groups: { g: { weightDecay: -1 } } })).toThrow(
      /group "g": weightDecay/,
    );
    expect(() => new AdamW({ threads: 1, maxGradNorm: 0 })).toThrow(/maxGradNorm/);
    expect(() => new AdamW({ threads: 1, memoryCapBytes: 1000 })).toThrow(/multiple of 64 KiB/);
    expect(() => new AdamW({ threads: 1, memoryCapBytes: 65536 })).toThrow(/leaves no room/);
    expect(() => opt.setHyperParams('default', { eps: -1 })).toThrow(/eps/);
  });
});

describe('unknown option names are errors naming the option and the closest valid one', () => {
  const opt = fresh();
  afterAll(() => opt.destroy());
  type Any = Record<string, unknown>;

  it('at the top level and per group, before any worker starts', () => {
    expect(() => new AdamW({ threads: 1, weight_decay: 0 } as Any)).toThrow(
      /AdamW options: unknown option "weight_decay": did you mean "weightDecay"\? Valid options: threads, lr, /,
    );
    expect(() => new AdamW({ threads: 1, maxGradnorm: 1 } as Any)).toThrow(
      /"maxGradnorm": did you mean "maxGradNorm"/,
    );
    expect(() => new AdamW({ thread: 2 } as Any)).toThrow(/unknown option "thread": did you mean "threads"/);
    expect(() => new AdamW({ threads: 1, groups: { noDecay: { weightdecay: 0 } } } as Any)).toThrow(
      /AdamW group "noDecay": unknown option "weightdecay": did you mean "weightDecay"\? Valid options: lr, betas, eps, weightDecay\./,
    );
    expect(() => new AdamW({ threads: 1, groups: { g: { beta: [0.9, 0.99] } } } as Any)).toThrow(
      /group "g": unknown option "beta": did you mean "betas"/,
    );
    expect(() => new AdamW('fast' as unknown as Any)).toThrow(
      /AdamW options: options must be an object, got string/,
    );
  });

  it('in registration, setHyperParams and step(), changing nothing', async () => {
    const before = snapshot(opt, ALL);
    expect(() => opt.addParam('b', [1], { grad_dtype: 'f16' } as Any)).toThrow(
      /addParam\("b"\): unknown option "grad_dtype": did you mean "gradDtype"/,
    );
    expect(() => opt.addStepOnly('c', 4, { outDType: 'f16' } as Any)).toThrow(
      /addStepOnly\("c"\): unknown option "outDType": did you mean "outDtype"/,
    );
    expect(() => opt.setHyperParams('default', { learningRate: 1 } as Any)).toThrow(
      /setHyperParams\("default"\): unknown option "learningRate"/,
    );
    await expect(opt.step({ grad_scale: 2 } as Any)).rejects.toThrow(
      /step\(\): unknown option "grad_scale": did you mean "gradScale"\? Valid options: names, gradScale, gradScales, threads, nonFinite\./,
    );
    await expect(opt.step({ nonfinite: 'skip' } as Any)).rejects.toThrow(/did you mean "nonFinite"/);
    expect(opt.names()).toEqual(ALL);
    expect(opt.hyperParams().lr).toBe(1e-3);
    expect(snapshotsEqual(before, snapshot(opt, ALL))).toEqual([]);
    expect(opt.stepCount).toBe(0);
  });
});

describe('step() with bad input changes nothing', () => {
  const opt = fresh();
  afterAll(() => opt.destroy());

  it('unknown or repeated names, a bad gradScale, a bad schedule value', async () => {
    const before = snapshot(opt, ALL);
    await expect(opt.step({ names: ['a', 'nope'] })).rejects.toThrow(/unknown tensor\(s\) "nope"/);
    await expect(opt.step({ names: ['a', 'a'] })).rejects.toThrow(/"a" is named twice/);
    await expect(opt.step({ gradScale: NaN })).rejects.toThrow(/gradScale must be finite/);
    const sched = new AdamW({ threads: 1, lrSchedule: () => NaN });
    sched.addParam('x', [1, 2]);
    await expect(sched.step()).rejects.toThrow(/lrSchedule returned NaN for tensor "x"/);
    expect(sched.readParam('x')).toEqual(new Float32Array([1, 2]));
    await sched.destroy();
    expect(snapshotsEqual(before, snapshot(opt, ALL))).toEqual([]);
    expect(opt.stepCount).toBe(0);
  });

  it("non-finite gradients under 'throw': names the tensors and counts, updates nothing", async () => {
    const before = snapshot(opt, ALL);
    opt.grad('a')[17] = NaN;
    opt.grad('a')[1000] = -Infinity; // the scalar tail
    opt.gradF16('h')[3] = 0x7c00; // fp16 +inf
    const err = await opt.step().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteGradientError);
    expect((err as NonFiniteGradientError).tensors).toEqual([
      { name: 'a', count: 2 },
      { name: 'h', count: 1 },
    ]);
    expect((err as Error).message).toMatch(/a \(2\), h \(1\); nothing was updated/);
    expect(snapshotsEqual(before, snapshot(opt, ALL))).toEqual([]);
    expect(opt.info('a').steps).toBe(0);
    // a finite-only subset still steps
    const r = await opt.step({ names: ['s'] });
    expect(r.applied).toBe(true);
  });

  it("non-finite gradients under 'skip': reports, updates nothing, keeps going", async () => {
    const skip = fresh({ nonFinite: 'skip' });
    const before = snapshot(skip, ALL);
    skip.grad('s')[98] = NaN;
    const r = await skip.step();
    expect(r).toMatchObject({ applied: false, step: 0, gradNorm: NaN, nonFinite: [{ name: 's', count: 1 }] });
    expect(snapshotsEqual(before, snapshot(skip, ALL))).toEqual([]);
    skip.grad('s')[98] = 0;
    expect((await skip.step()).applied).toBe(true);
    expect(skip.stepCount).toBe(1);
    await skip.destroy();
  });

  it("'propagate' lets NaN into the state (no checking pass)", async () => {
    const prop = fresh({ nonFinite: 'propagate' });
    prop.grad('a')[5] = NaN;
    const r = await prop.step();
    expect(r.applied).toBe(true);
    expect(r.gradNorm).toBeNull();
    expect(Number.isNaN(prop.param('a')[5])).toBe(true);
    expect(Number.isNaN(prop.param('a')[6])).toBe(false);
    await prop.destroy();
  });
});

describe('lifetime', () => {
  it('refuses a second step while one runs, and every call after destroy()', async () => {
    const opt = fresh();
    const running = opt.step();
    await expect(opt.step()).rejects.toThrow(/a step is still running/);
    expect(() => opt.addParam('z', [1])).toThrow(/a step is still running/);
    const destroying = opt.destroy(); // waits for the running step
    await running;
    await destroying;
    await expect(opt.step()).rejects.toBeInstanceOf(OptimizerDestroyedError);
    expect(() => opt.grad('a')).toThrow(/grad\(\): the optimizer was destroyed/);
    expect(() => opt.addParam('z', [1])).toThrow(OptimizerDestroyedError);
    expect(() => opt.stateDict()).toThrow(OptimizerDestroyedError);
    expect(() => opt.loadStateDict(new Uint8Array(8))).toThrow(OptimizerDestroyedError);
    await opt.destroy(); // idempotent
  });
});
