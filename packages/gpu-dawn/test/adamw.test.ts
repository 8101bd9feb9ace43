import { describe, expect, it } from 'vitest';
import {
  adamw,
  createAdamWState,
  f16Round,
  f32ToF16Bits,
  globalNorm,
  nonFiniteCount,
  type AdamWParam,
  type FloatDType,
  type GpuRuntime,
  type Tensor,
} from '../src/index.js';
import { adamwGradFactor, adamwReference, reduceReference } from '../src/reference.js';
import { expectClose, makeRng, NAN_BITS, randn, useGpu } from './harness.js';

const gpu = useGpu();

const HYPER = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
const STEPS = 5;

interface Host {
  param: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

function hostState(values: Float32Array): Host {
  return {
    param: Float64Array.from(values),
    m: new Float64Array(values.length),
    v: new Float64Array(values.length),
  };
}

/** A param with GPU AdamW state; f16 values are rounded before the reference sees them. */
function setup(
  g: GpuRuntime,
  n: number,
  paramType: FloatDType,
  rng: () => number,
  master = false,
): { gpuParam: AdamWParam; host: Host } {
  const values = randn(rng, n);
  const stored = paramType === 'f16' ? Float32Array.from(values, f16Round) : values;
  const param = g.upload('w', paramType, [n], stored);
  const grad = g.tensor('grad', 'f32', [n], 'workspace');
  return { gpuParam: { param, grad, ...createAdamWState(g, param, { master }) }, host: hostState(stored) };
}

function release(p: AdamWParam): void {
  for (const t of [p.param, p.grad, p.m, p.v, p.master]) t?.release();
}

/** m is a sum of terms of both signs: its f32 error is relative to the gradients (~0.1-1), not to m. */
const STATE_TOL = { rtol: 2e-5, atol: 1e-7 };

describe('AdamW on the GPU', () => {
  for (const n of [1, 4099]) {
    it(`f32 params n=${n}: ${STEPS} steps match the float64 reference`, async () => {
      const g = gpu();
      const rng = makeRng(n);
      const { gpuParam: p, host } = setup(g, n, 'f32', rng);
      for (let step = 1; step <= STEPS; step++) {
        const grad = randn(rng, n, 0.1 * step);
        g.write(p.grad, grad);
        adamw(g, p, { ...HYPER, step });
        adamwReference(host, grad, { ...HYPER, step });
        expectClose(await g.read(p.param), host.param, { rtol: 1e-6, atol: 1e-8 }, `param, step ${step}`);
      }
      expectClose(await g.read(p.m), host.m, STATE_TOL, 'm');
      expectClose(await g.read(p.v), host.v, STATE_TOL, 'v');
      release(p);
    });
  }

  it('f16 params with an f32 master copy: master as in f32, param its nearest f16', async () => {
    const g = gpu();
    const n = 2049;
    const rng = makeRng(7);
    const { gpuParam: p, host } = setup(g, n, 'f16', rng, true);
    for (let step = 1; step <= STEPS; step++) {
      const grad = randn(rng, n);
      g.write(p.grad, grad);
      adamw(g, p, { ...HYPER, step });
      g.submit(); // queue.writeBuffer of the next gradient must not overtake this step's recorded dispatch
      adamwReference(host, grad, { ...HYPER, step });
    }
    const master = await g.read(p.master!);
    expectClose(master, host.param, { rtol: 1e-6, atol: 1e-8 }, 'master');
    const bits = new Uint16Array(await g.readBytes(p.param.buffer, 0, p.param.bindingSize, 'param'), 0, n);
    for (let i = 0; i < n; i++)
      if (bits[i] !== f32ToF16Bits(master[i]!))
        expect.fail(`param[${i}] is not the f16 rounding of the master`);
    expectClose(await g.read(p.v), host.v, STATE_TOL, 'v');
    release(p);
  });

  it('f16 params without a master copy: stochastic rounding tracks the exact trajectory, and tiny steps are not lost', async () => {
    const g = gpu();
    const n = 4099;
    const rng = makeRng(8);
    // lr 1e-4: each update is ~1/10 ulp of a weight near 1, so rounding to nearest would never move it
    const hyper = { ...HYPER, lr: 1e-4, weightDecay: 0 };
    const { gpuParam: p, host } = setup(g, n, 'f16', rng);
    const start = Float64Array.from(host.param);
    const grad = new Float32Array(n).fill(1); // constant gradient: every update is -lr (Adam normalises)
    g.write(p.grad, grad);
    const steps = 20;
    for (let step = 1; step <= steps; step++) {
      adamw(g, p, { ...hyper, step, seed: 99 });
      adamwReference(host, grad, { ...hyper, step });
    }
    const got = await g.read(p.param);
    // the rounding errors of 20 steps add up like a random walk (each < 1 ulp, mean 0): std <= 2.3 ulps
    expectClose(got, host.param, { rtol: 10 * 2 ** -10, atol: 10 * 2 ** -24 }, 'param');
    // and the mean moved by the exact mean step (20 * 1e-4 per element), within sampling noise
    let meanMove = 0;
    let meanWant = 0;
    for (let i = 0; i < n; i++) {
      meanMove += (got[i]! - start[i]!) / n;
      meanWant += (host.param[i]! - start[i]!) / n;
    }
    expect(Math.abs(meanMove - meanWant)).toBeLessThan(0.1 * Math.abs(meanWant)); // ~6 sigma
    release(p);
  });

  it('f16 gradients into f32 params', async () => {
    const g = gpu();
    const n = 999;
    const rng = makeRng(9);
    const { gpuParam: p, host } = setup(g, n, 'f32', rng);
    const grad16 = g.tensor('grad16', 'f16', [n], 'workspace');
    const grad = randn(rng, n);
    g.write(grad16, grad);
    adamw(g, { ...p, grad: grad16 }, { ...HYPER, step: 1 });
    adamwReference(host, Float32Array.from(grad, f16Round), { ...HYPER, step: 1 });
    expectClose(await g.read(p.param), host.param, { rtol: 1e-6, atol: 1e-8 }, 'param');
    grad16.release();
    release(p);
  });

  for (const maxNorm of [0.5, 1e6]) {
    it(`scales gradients and clips by a global norm computed on the GPU (maxNorm ${maxNorm})`, async () => {
      const g = gpu();
      const rng = makeRng(10);
      const a = setup(g, 1031, 'f32', rng);
      const b = setup(g, 77, 'f32', rng);
      const grads = [randn(rng, 1031), randn(rng, 77)];
      g.write(a.gpuParam.grad, grads[0]!);
      g.write(b.gpuParam.grad, grads[1]!);
      const stats = g.tensor('stats', 'f32', [2], 'workspace');
      g.fill32(stats, NAN_BITS);
      globalNorm(g, [a.gpuParam.grad, b.gpuParam.grad], { out: stats, outIndex: 1 });
      const gradScale = 0.5;
      adamw(g, [a.gpuParam, b.gpuParam], {
        ...HYPER,
        step: 3,
        gradScale,
        clip: { norm: stats, index: 1, maxNorm },
      });
      const gradFactor = adamwGradFactor(gradScale, { norm: reduceReference('norm', grads), maxNorm });
      expect(gradFactor < gradScale).toBe(maxNorm < 1);
      for (const [k, s] of [a, b].entries()) {
        adamwReference(s.host, grads[k]!, { ...HYPER, step: 3, gradFactor });
        expectClose(await g.read(s.gpuParam.param), s.host.param, { rtol: 1e-6, atol: 1e-8 }, `param ${k}`);
        expectClose(await g.read(s.gpuParam.m), s.host.m, STATE_TOL, `m ${k}`);
        expectClose(await g.read(s.gpuParam.v), s.host.v, STATE_TOL, `v ${k}`);
        release(s.gpuParam);
      }
      stats.release();
    });
  }

  it('unscales by a loss scale kept on the GPU (with clipping): the same bits as dividing on the host', async () => {
    const g = gpu();
    const rng = makeRng(12);
    const n = 301;
    const lossScale = 4096;
    const scaled = Float32Array.from(randn(rng, n), (v) => v * lossScale); // gradients of the scaled loss
    const byTensor = setup(g, n, 'f32', makeRng(13));
    const byHost = setup(g, n, 'f32', makeRng(13)); // the same initial params
    const scaleT = g.upload('lossScale', 'f32', [2], [lossScale, 7]);
    const stats = g.tensor('stats', 'f32', [1], 'workspace');
    for (const s of [byTensor, byHost]) g.write(s.gpuParam.grad, scaled);
    globalNorm(g, byTensor.gpuParam.grad, { out: stats });
    const clip = { norm: stats, maxNorm: 0.5 };
    adamw(g, byTensor.gpuParam, { ...HYPER, step: 2, gradScale: 0.5, clip, unscaleBy: { tensor: scaleT } });
    adamw(g, byHost.gpuParam, { ...HYPER, step: 2, gradScale: 0.5 / lossScale, clip });
    for (const k of ['param', 'm', 'v'] as const)
      expect(Array.from(await g.read(byTensor.gpuParam[k])), k).toEqual(
        Array.from(await g.read(byHost.gpuParam[k])),
      );
    const gradFactor = adamwGradFactor(0.5 / lossScale, {
      norm: reduceReference('norm', [scaled]),
      maxNorm: 0.5,
    });
    adamwReference(byTensor.host, scaled, { ...HYPER, step: 2, gradFactor });
    expectClose(
      await g.read(byTensor.gpuParam.param),
      byTensor.host.param,
      { rtol: 1e-6, atol: 1e-8 },
      'param',
    );
    expectClose(await g.read(byTensor.gpuParam.m), byTensor.host.m, STATE_TOL, 'm');
    for (const s of [byTensor, byHost]) release(s.gpuParam);
    for (const t of [scaleT, stats]) t.release();
  });

  it('skips the whole step on the GPU when the gradients hold a NaN or inf, and runs when they do not', async () => {
    const g = gpu();
    const n = 513;
    const rng = makeRng(11);
    const { gpuParam: p, host } = setup(g, n, 'f16', rng, true);
    const count = g.tensor('nonFinite', 'u32', [1], 'workspace');
    const readAll = async (): Promise<number[][]> =>
      Promise.all([p.param, p.m, p.v, p.master!].map(async (t: Tensor) => Array.from(await g.read(t))));
    const before = await readAll();
    const bad = randn(rng, n);
    bad[100] = NaN;
    g.write(p.grad, bad);
    nonFiniteCount(g, p.grad, { out: count });
    adamw(g, p, { ...HYPER, step: 1, skipIfNonFinite: { count } });
    expect(await readAll()).toEqual(before);
    const good = randn(rng, n);
    g.write(p.grad, good);
    nonFiniteCount(g, p.grad, { out: count });
    adamw(g, p, { ...HYPER, step: 1, skipIfNonFinite: { count } });
    adamwReference(host, good, { ...HYPER, step: 1 });
    expectClose(await g.read(p.master!), host.param, { rtol: 1e-6, atol: 1e-8 }, 'master after a good step');
    count.release();
    release(p);
  });

  it('rejects bad state and step numbers with messages naming the tensors', () => {
    const g = gpu();
    const param = g.tensor('w', 'f32', [10], 'workspace');
    const grad = g.tensor('grad', 'f32', [10], 'workspace');
    const m = g.tensor('m', 'f16', [10], 'workspace');
    const v = g.tensor('v', 'f32', [9], 'workspace');
    const good = g.tensor('v', 'f32', [10], 'workspace');
    expect(() => adamw(g, { param, grad, m, v: good }, { lr: 1, step: 1 })).toThrow(
      /optimizer state 'm: f16\[10\]' must be f32 with 10 elements/,
    );
    expect(() => adamw(g, { param, grad, m: good, v }, { lr: 1, step: 1 })).toThrow(/'v: f32\[9\]'/);
    expect(() => adamw(g, { param, grad, m: good, v: good }, { lr: 1, step: 0 })).toThrow(/step must be/);
    for (const t of [param, grad, m, v, good]) t.release();
  });
});
