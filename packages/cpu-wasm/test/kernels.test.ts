// The exported kernels called directly (main-thread instance) against the references, bit for bit,
// at odd lengths and unaligned offsets so vector bodies and scalar tails are both exercised.
import { describe, expect, it } from 'vitest';
import {
  createSharedMemory,
  floatToHalf,
  halfToFloat,
  heapBase,
  instantiateKernels,
  wasmFeatures,
} from '../src/index.js';
import { adamwStep32, sameBits, type RefHyper } from './reference.js';
import { makeRng, uniform } from './rng.js';

const memory = createSharedMemory(8 << 20);
const k = instantiateKernels(memory, Math.ceil(heapBase() / 16) * 16);
const BASE = 1 << 20; // scratch area well above the module's data and stack
const GUARD = 12345.5;

/** A fresh Float32Array of n elements at byte offset `at` (plus guards after it). */
function f32At(at: number, n: number, init?: Float32Array): Float32Array {
  const v = new Float32Array(memory.buffer, at, n + 4);
  v.fill(GUARD);
  if (init) v.set(init);
  return v.subarray(0, n);
}

function guardsIntact(v: Float32Array): boolean {
  const g = new Float32Array(v.buffer, v.byteOffset + v.byteLength, 4);
  return g.every((x) => x === GUARD);
}

const HP: RefHyper = { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };
const f = Math.fround;
function scalars(hp: RefHyper, t: number, gscale: number): number[] {
  return [
    f(hp.beta1),
    f(1 - hp.beta1),
    f(hp.beta2),
    f(1 - hp.beta2),
    f(1 - hp.lr * hp.weightDecay),
    f(hp.lr / (1 - hp.beta1 ** t)),
    f(1 / Math.sqrt(1 - hp.beta2 ** t)),
    f(hp.eps),
    f(gscale),
  ];
}

describe('engine', () => {
  it('has wasm SIMD and shared memory', () => {
    const feats = wasmFeatures();
    expect(feats.simd128).toBe(true);
    expect(feats.threads).toBe(true);
  });
});

describe('AdamW kernels equal the scalar fp32 sequence bit for bit', () => {
  for (const n of [1, 3, 4, 5, 31, 1001]) {
    for (const skew of [0, 4]) {
      it(`classic fp32 grads, n=${n}, offset skew ${skew}`, () => {
        const rng = makeRng(n * 31 + skew);
        const p0 = uniform(rng, n);
        const g = uniform(rng, n, 3);
        const m0 = uniform(rng, n, 0.1);
        const v0 = uniform(rng, n, 0.01).map(Math.abs);
        const stride = Math.ceil((n + 4) / 16) * 64 + 64;
        const [pa, ga, ma, va] = [0, 1, 2, 3].map((i) => BASE + skew + i * stride) as [
          number,
          number,
          number,
          number,
        ];
        const p = f32At(pa, n, p0);
        f32At(ga, n, g);
        const m = f32At(ma, n, m0);
        const v = f32At(va, n, v0);
        const t = 7;
        k.adamw_f32g(pa, ga, ma, va, n, ...scalars(HP, t, 0.75));
        const [pr, mr, vr] = [p0.slice(), m0.slice(), v0.slice()];
        adamwStep32(pr, mr, vr, g, HP, t, 0.75);
        expect(sameBits(p, pr)).toBe(true);
        expect(sameBits(m, mr)).toBe(true);
        expect(sameBits(v, vr)).toBe(true);
        for (const x of [p, m, v]) expect(guardsIntact(x)).toBe(true);
      });
    }
  }

  for (const [gd, od] of [
    ['f32', 'f32'],
    ['f32', 'f16'],
    ['f16', 'f32'],
    ['f16', 'f16'],
  ] as const) {
    it(`step-only ${gd} grads -> ${od} steps, odd length`, () => {
      const n = 203;
      const rng = makeRng(gd.length * 7 + od.length);
      const g32 = uniform(rng, n, 2);
      const g16 = new Uint16Array(n).map((_, i) => floatToHalf(g32[i]!));
      const gEff = gd === 'f16' ? new Float32Array(n).map((_, i) => halfToFloat(g16[i]!)) : g32;
      const m0 = uniform(rng, n, 0.1);
      const v0 = uniform(rng, n, 0.01).map(Math.abs);
      const [ga, ma, va, oa] = [0, 1, 2, 3].map((i) => BASE + i * 4096);
      if (gd === 'f16') new Uint16Array(memory.buffer, ga!, n).set(g16);
      else f32At(ga!, n, g32);
      const m = f32At(ma!, n, m0);
      const v = f32At(va!, n, v0);
      const name = `adamw_step_${gd}g_${od}o` as const;
      const s = scalars(HP, 3, 1);
      k[name](ga!, ma!, va!, oa!, n, s[0]!, s[1]!, s[2]!, s[3]!, s[5]!, s[6]!, s[7]!, s[8]!);
      const [mr, vr] = [m0.slice(), v0.slice()];
      const want = adamwStep32(null, mr, vr, gEff, HP, 3);
      expect(sameBits(m, mr)).toBe(true);
      expect(sameBits(v, vr)).toBe(true);
      if (od === 'f32') expect(sameBits(new Float32Array(memory.buffer, oa!, n), want)).toBe(true);
      else
        expect(
          sameBits(
            new Uint16Array(memory.buffer, oa!, n),
            new Uint16Array(n).map((_, i) => floatToHalf(want[i]!)),
          ),
        ).toBe(true);
    });
  }
});

describe('fp16 conversion', () => {
  it('TS halfToFloat agrees with the format definition on known values', () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x03ff)).toBe(1023 * 2 ** -24);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(floatToHalf(65520)).toBe(0x7c00);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
  });

  it('f16_to_f32 equals the TS conversion for all 65536 halves', () => {
    const src = new Uint16Array(memory.buffer, BASE, 65536);
    for (let i = 0; i < 65536; i++) src[i] = i;
    const dstAt = BASE + 2 * 65536 + 64;
    k.f16_to_f32(BASE, dstAt, 65536);
    const got = new Float32Array(memory.buffer, dstAt, 65536);
    let bad = 0;
    for (let h = 0; h < 65536; h++) {
      const want = halfToFloat(h);
      // JS numbers do not keep NaN payloads: compare NaN-ness there, exact values (and zero signs) elsewhere
      if (Number.isNaN(want) ? !Number.isNaN(got[h]) : !Object.is(got[h], want)) bad++;
    }
    expect(bad).toBe(0);
  });

  it('f32_to_f16 equals the TS conversion (random, subnormal, overflow, ties, specials)', () => {
    const rng = makeRng(5);
    const n = 100_003;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = (((rng() * 2 ** 32) >>> 0) & 0x807fffff) | ((100 + (i % 48)) << 23);
    const specials = [
      0,
      -0,
      Infinity,
      -Infinity,
      NaN,
      65504,
      65519.99,
      65520,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -26,
      1e-30,
    ];
    const src = f32At(BASE, n);
    src.set(new Float32Array(bits.buffer));
    src.set(specials);
    const dstAt = BASE + 4 * n + 64;
    k.f32_to_f16(BASE, dstAt, n);
    const got = new Uint16Array(memory.buffer, dstAt, n);
    const want = new Uint16Array(n).map((_, i) => floatToHalf(src[i]!));
    expect(sameBits(got, want)).toBe(true);
  });
});

describe('reductions and copies', () => {
  it('sum_squares over fp32 and fp16 matches float64', () => {
    const n = 10_007;
    const x = uniform(makeRng(9), n);
    f32At(BASE, n, x);
    let want = 0;
    for (const v of x) want += v * v;
    expect(Math.abs(k.sum_squares_f32(BASE, n) - want) / want).toBeLessThan(1e-12);
    const h = new Uint16Array(memory.buffer, BASE + 65536, n);
    for (let i = 0; i < n; i++) h[i] = floatToHalf(x[i]!);
    let want16 = 0;
    for (const v of h) want16 += halfToFloat(v) ** 2;
    expect(Math.abs(k.sum_squares_f16(h.byteOffset, n) - want16) / want16).toBeLessThan(1e-12);
  });

  it('count_nonfinite counts NaN and infinities in the body and the tail', () => {
    const x = f32At(BASE, 11, new Float32Array(11).fill(1));
    x[0] = NaN;
    x[5] = Infinity;
    x[10] = -Infinity;
    x[3] = 3e38;
    expect(k.count_nonfinite_f32(BASE, 11)).toBe(3);
    const h = new Uint16Array(memory.buffer, BASE + 4096, 9).fill(0x3c00);
    h[2] = 0x7c00;
    h[8] = 0xfe00;
    expect(k.count_nonfinite_f16(h.byteOffset, 9)).toBe(2);
  });

  it('copy_f32 copies exactly n elements', () => {
    const n = 1003;
    const x = uniform(makeRng(2), n);
    f32At(BASE, n, x);
    const dst = f32At(BASE + 8192, n);
    k.copy_f32(BASE, BASE + 8192, n);
    expect(sameBits(dst, x)).toBe(true);
    expect(guardsIntact(dst)).toBe(true);
  });
});
