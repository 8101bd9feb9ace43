// addParam(..., { paramF16: true }): the fp16 copy of the params written by the AdamW kernel itself,
// checked against floatToHalf (round to nearest even) of the fp32 params, at the kernel level and
// through the optimizer (thread counts, gradient dtypes, several memories, skipped steps, state dicts).
import { afterAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  createSharedMemory,
  decodeSafetensors,
  floatToHalf,
  halfToFloat,
  heapBase,
  instantiateKernels,
  NonFiniteGradientError,
  type Dtype,
} from '../src/index.js';
import { adamwStep32, sameBits, type RefHyper } from './reference.js';
import { makeRng, uniform } from './rng.js';

/** Indices where `half` is not the fp16 rounding of `p` (NaN: any NaN half), at most 5 of them. */
function notHalfOf(half: Uint16Array, p: Float32Array): number[] {
  const bad: number[] = [];
  if (half.length !== p.length) return [-1];
  for (let i = 0; i < p.length && bad.length < 5; i++) {
    const ok = Number.isNaN(p[i]!) ? (half[i]! & 0x7fff) === 0x7e00 : half[i] === floatToHalf(p[i]!);
    if (!ok) bad.push(i);
  }
  return bad;
}

/** Initial params over the whole fp16 range: subnormal, normal, beyond 65504 (-> inf), and zeros. */
function spreadParams(seed: number, n: number): Float32Array {
  const x = uniform(makeRng(seed), n);
  const scales = [3e-6, 1e-2, 1, 40, 7e4, 0];
  return x.map((v, i) => v * scales[i % scales.length]!);
}

function gradient(seed: number, t: number, n: number, dtype: Dtype): Float32Array | Uint16Array {
  const g = uniform(makeRng(seed * 7919 + t * 104729 + n), n, 1.5);
  return dtype === 'f32' ? g : Uint16Array.from(g, floatToHalf);
}

describe('the fused kernels adamw_{f32,f16}g_f16p', () => {
  const memory = createSharedMemory(4 << 20);
  const k = instantiateKernels(memory, Math.ceil(heapBase() / 16) * 16);
  const BASE = 1 << 20;
  const GUARD = 0x5a5a;
  const HP: RefHyper = { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };
  const f = Math.fround;
  const t = 4;
  const s = [
    f(HP.beta1),
    f(1 - HP.beta1),
    f(HP.beta2),
    f(1 - HP.beta2),
    f(1 - HP.lr * HP.weightDecay),
    f(HP.lr / (1 - HP.beta1 ** t)),
    f(1 / Math.sqrt(1 - HP.beta2 ** t)),
    f(HP.eps),
    f(0.75),
  ];

  for (const gd of ['f32', 'f16'] as const) {
    // lengths around the 8-element body and 4-element lanes; skews leave the arrays unaligned
    for (const n of [1, 3, 4, 7, 8, 9, 15, 17, 1001]) {
      for (const skew of [0, 2]) {
        it(`${gd} grads, n=${n}, skew ${skew}: fp32 results as adamw_${gd}g, the half copy their rounding`, () => {
          const rng = makeRng(n * 13 + skew + gd.length);
          const p0 = spreadParams(n + skew, n);
          const g32 = uniform(rng, n, 3);
          const g16 = Uint16Array.from(g32, floatToHalf);
          const gEff = gd === 'f16' ? Float32Array.from(g16, halfToFloat) : g32;
          const m0 = uniform(rng, n, 0.1);
          const v0 = uniform(rng, n, 0.01).map(Math.abs);
          const stride = Math.ceil((n + 8) / 16) * 64 + 64;
          const at = (i: number): number => BASE + skew * 4 + i * stride;
          const fused = { p: at(0), g: at(1), m: at(2), v: at(3), h: at(4) + skew };
          const plain = { p: at(5), g: at(1), m: at(6), v: at(7) };
          if (gd === 'f16') new Uint16Array(memory.buffer, fused.g, n).set(g16);
          else new Float32Array(memory.buffer, fused.g, n).set(g32);
          for (const [o, arr] of [
            [fused.p, p0],
            [fused.m, m0],
            [fused.v, v0],
            [plain.p, p0],
            [plain.m, m0],
            [plain.v, v0],
          ] as const)
            new Float32Array(memory.buffer, o, n).set(arr);
          const h16 = new Uint16Array(memory.buffer, fused.h, n + 8).fill(GUARD);
          const fusedFn = gd === 'f32' ? k.adamw_f32g_f16p : k.adamw_f16g_f16p;
          const plainFn = gd === 'f32' ? k.adamw_f32g : k.adamw_f16g;
          fusedFn(fused.p, fused.g, fused.m, fused.v, fused.h, n, ...s);
          plainFn(plain.p, plain.g, plain.m, plain.v, n, ...s);
          const [pr, mr, vr] = [p0.slice(), m0.slice(), v0.slice()];
          adamwStep32(pr, mr, vr, gEff, HP, t, 0.75);
          const p = new Float32Array(memory.buffer, fused.p, n);
          expect(sameBits(p, pr)).toBe(true);
          expect(sameBits(p, new Float32Array(memory.buffer, plain.p, n))).toBe(true);
          expect(sameBits(new Float32Array(memory.buffer, fused.m, n), mr)).toBe(true);
          expect(sameBits(new Float32Array(memory.buffer, fused.v, n), vr)).toBe(true);
          expect(notHalfOf(h16.subarray(0, n), p)).toEqual([]);
          expect(h16.subarray(n).every((x) => x === GUARD)).toBe(true);
        });
      }
    }
  }
});

const HP_OPTIONS = { lr: 2e-3, weightDecay: 0.1, minElementsPerThread: 32 } as const;
const LENGTHS = [1, 7, 1001, 4099];
const STEPS = 5;

describe.each([1, 2, 3])('paramF16 through the optimizer on %i thread(s)', (threads) => {
  const opt = new AdamW({ ...HP_OPTIONS, threads });
  afterAll(() => opt.destroy());
  const tensors: Array<{ name: string; n: number; gd: Dtype }> = [];
  for (const n of LENGTHS)
    for (const gd of ['f32', 'f16'] as const) {
      const name = `w${n}${gd}`;
      tensors.push({ name, n, gd });
      opt.addParam(name, spreadParams(n, n), { gradDtype: gd, paramF16: true });
      opt.addParam(`${name}.plain`, spreadParams(n, n), { gradDtype: gd }); // the same without the copy
    }
  opt.addStepOnly('s', 515, { outDtype: 'f16' }); // other kinds in the same step

  it('makes the copy at registration', () => {
    for (const { name } of tensors) {
      expect(opt.info(name).paramF16).toBe(true);
      expect(opt.info(`${name}.plain`).paramF16).toBe(false);
      expect(notHalfOf(opt.paramF16(name), opt.param(name)), name).toEqual([]);
    }
  });

  for (const upTo of [1, STEPS]) {
    it(`rewrites it with every step (after ${upTo}); the fp32 params are those without a copy`, async () => {
      for (let t = opt.stepCount + 1; t <= upTo; t++) {
        for (const { name, n, gd } of tensors) {
          const g = gradient(n, t, n, gd);
          opt.setGrad(name, g);
          opt.setGrad(`${name}.plain`, g);
        }
        opt.setGrad('s', gradient(9, t, 515, 'f32'));
        expect((await opt.step()).applied).toBe(true);
      }
      for (const { name } of tensors) {
        expect(sameBits(opt.param(name), opt.param(`${name}.plain`)), name).toBe(true);
        expect(notHalfOf(opt.paramF16(name), opt.param(name)), name).toEqual([]);
        expect(sameBits(opt.readParamF16(name), opt.paramF16(name)), name).toBe(true);
      }
    });
  }

  it('leaves the copy untouched when a step is skipped or refused for non-finite gradients', async () => {
    const name = 'w4099f32';
    const before = opt.readParamF16(name);
    const g = gradient(1, 99, 4099, 'f32') as Float32Array;
    g[4098] = Infinity;
    opt.setGrad(name, g);
    const r = await opt.step({ nonFinite: 'skip' });
    expect(r.applied).toBe(false);
    expect(opt.paramF16(name)).toEqual(before);
    await expect(opt.step()).rejects.toThrow(NonFiniteGradientError);
    expect(opt.paramF16(name)).toEqual(before);
    expect(opt.info(name).steps).toBe(STEPS);
  });

  it("lets NaN through to the copy under 'propagate', as to the params", async () => {
    const e = new AdamW({ threads, minElementsPerThread: 32 });
    e.addParam('x', spreadParams(2, 1001), { paramF16: true });
    const g = gradient(2, 1, 1001, 'f32') as Float32Array;
    g[5] = NaN;
    g[1000] = NaN;
    e.setGrad('x', g);
    expect((await e.step({ nonFinite: 'propagate' })).applied).toBe(true);
    expect(Number.isNaN(e.param('x')[1000])).toBe(true);
    expect(notHalfOf(e.paramF16('x'), e.param('x'))).toEqual([]);
    await e.destroy();
  });
});

describe('paramF16 gives the same bits on any thread count', () => {
  it('1 vs 3 threads, several steps', async () => {
    const results: Uint16Array[] = [];
    for (const threads of [1, 3]) {
      const opt = new AdamW({ ...HP_OPTIONS, threads, maxGradNorm: 1 });
      opt.addParam('a', spreadParams(4, 20_003), { paramF16: true });
      opt.addParam('b', spreadParams(5, 77), { gradDtype: 'f16', paramF16: true });
      for (let t = 1; t <= 3; t++) {
        opt.setGrad('a', gradient(4, t, 20_003, 'f32'));
        opt.setGrad('b', gradient(5, t, 77, 'f16'));
        await opt.step();
      }
      results.push(Uint16Array.from([...opt.paramF16('a'), ...opt.paramF16('b')]));
      await opt.destroy();
    }
    expect(sameBits(results[0]!, results[1]!)).toBe(true);
  });
});

describe('paramF16 over several shared memories', () => {
  const CAP = 512 * 1024;
  const N = 50_001;
  const small = new AdamW({ ...HP_OPTIONS, threads: 2, memoryCapBytes: CAP });
  const single = new AdamW({ ...HP_OPTIONS, threads: 2 });
  afterAll(() => Promise.all([small.destroy(), single.destroy()]));
  for (const o of [small, single]) {
    o.addParam('big', spreadParams(6, N), { paramF16: true });
    o.addParam('big16', spreadParams(7, 30_001), { gradDtype: 'f16', paramF16: true });
  }

  it('splits the copy with the tensor: per-segment views, readParamF16, no single view', async () => {
    expect(small.info('big').segments).toBeGreaterThanOrEqual(3);
    expect(small.info('big16').segments).toBeGreaterThanOrEqual(2);
    expect(() => small.paramF16('big')).toThrow(/spans \d shared memories; use segments\("big"\)/);
    for (let t = 0; t <= 3; t++) {
      if (t > 0) {
        for (const o of [small, single]) {
          o.setGrad('big', gradient(6, t, N, 'f32'));
          o.setGrad('big16', gradient(7, t, 30_001, 'f16'));
        }
        await Promise.all([small.step(), single.step()]);
      }
      for (const name of ['big', 'big16']) {
        for (const s of small.segments(name)) expect(notHalfOf(s.paramF16!, s.param!), name).toEqual([]);
        expect(sameBits(small.readParamF16(name), single.paramF16(name)), `${name} after ${t}`).toBe(true);
      }
    }
    expect(sameBits(single.segments('big')[0]!.paramF16!, single.paramF16('big'))).toBe(true);
  });
});

describe('paramF16 and the state dict', () => {
  it('is derived state: not saved, re-made by loadStateDict, interchangeable with plain tensors', async () => {
    const a = new AdamW({ ...HP_OPTIONS, threads: 2 });
    const b = new AdamW({ ...HP_OPTIONS, threads: 1, memoryCapBytes: 512 * 1024 });
    const plain = new AdamW({ ...HP_OPTIONS, threads: 1 });
    a.addParam('w', spreadParams(8, 3001), { paramF16: true });
    b.addParam('w', spreadParams(9, 3001), { paramF16: true });
    plain.addParam('w', spreadParams(10, 3001));
    for (let t = 1; t <= 2; t++) {
      a.setGrad('w', gradient(8, t, 3001, 'f32'));
      await a.step();
    }
    const sd = a.stateDict();
    expect([...decodeSafetensors(sd).tensors.keys()].sort()).toEqual([
      'w.exp_avg',
      'w.exp_avg_sq',
      'w.param',
    ]);
    b.loadStateDict(sd);
    expect(b.paramF16('w')).toEqual(a.paramF16('w'));
    plain.loadStateDict(sd); // a plain tensor takes it, and gives it back
    b.param('w').fill(0);
    b.loadStateDict(plain.stateDict());
    expect(b.paramF16('w')).toEqual(a.paramF16('w'));
    await Promise.all([a.destroy(), b.destroy(), plain.destroy()]);
  });
});

describe('paramF16 options and errors', () => {
  const opt = new AdamW({ threads: 1 });
  afterAll(() => opt.destroy());
  opt.addParam('w', new Float32Array([1, 2.5, 65519, 65520, -1e-7]), { paramF16: true });
  opt.addParam('plain', new Float32Array(3));
  opt.addStepOnly('s', 3);

  it('refreshParamF16 re-makes the copy after params are written directly', () => {
    expect([...opt.paramF16('w')]).toEqual([0x3c00, 0x4100, 0x7bff, 0x7c00, 0x8002]);
    opt.param('w').set([0.5, -2, 1e-8, 3, 4]);
    expect(opt.paramF16('w')[0]).toBe(0x3c00); // stale until refreshed
    opt.refreshParamF16(['w']);
    expect([...opt.paramF16('w')]).toEqual([0x3800, 0xc000, 0x0000, 0x4200, 0x4400]);
    opt.param('w')[4] = 1;
    opt.refreshParamF16(); // all tensors that keep a copy
    expect(opt.paramF16('w')[4]).toBe(0x3c00);
  });

  it('refuses tensors without a copy and bad option values, registering nothing', () => {
    expect(() => opt.paramF16('plain')).toThrow(/"plain" keeps no fp16 copy.*paramF16: true/);
    expect(() => opt.readParamF16('plain')).toThrow(TypeError);
    expect(() => opt.refreshParamF16(['plain'])).toThrow(/keeps no fp16 copy/);
    expect(() => opt.paramF16('s')).toThrow(/step-only: it has no params/);
    expect(() => opt.readParamF16('w', new Uint16Array(4))).toThrow(/Uint16Array of 5 elements/);
    expect(() => opt.addParam('bad', [1], { paramF16: 'yes' as unknown as boolean })).toThrow(
      /paramF16 must be true or false/,
    );
    expect(() => opt.addStepOnly('bad', 3, { paramF16: true } as unknown as { outDtype: 'f32' })).toThrow(
      /paramF16 is for param tensors/,
    );
    expect(opt.has('bad')).toBe(false);
    expect(opt.info('plain').paramF16).toBe(false);
    expect(opt.info('s').paramF16).toBe(false);
  });

  it('handles empty tensors', async () => {
    const e = new AdamW({ threads: 2 });
    e.addParam('none', [], { paramF16: true });
    expect(e.paramF16('none').length).toBe(0);
    expect(e.segments('none')).toEqual([]);
    expect((await e.step()).applied).toBe(true);
    await e.destroy();
  });
});
