import { describe, expect, it } from 'vitest';
import {
  applyDelta,
  cast,
  f16BitsToF32,
  f16Round,
  f32ToF16Bits,
  type GpuRuntime,
  type Tensor,
} from '../src/index.js';
import { applyDeltaReference, castReference, stochasticAddNeighbours } from '../src/reference.js';
import { expectClose, makeRng, NAN_BITS, randn, useGpu } from './harness.js';

const gpu = useGpu();

function poisoned(g: GpuRuntime, label: string, dtype: 'f32' | 'f16', n: number): Tensor {
  const t = g.tensor(label, dtype, [n], 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}

async function readF16Bits(g: GpuRuntime, t: Tensor): Promise<Uint16Array> {
  return new Uint16Array(await g.readBytes(t.buffer, t.byteOffset, t.bindingSize, t.label), 0, t.numel);
}

const hex = (v: number): string => `0x${v.toString(16)}`;

describe('casts f32 <-> f16', () => {
  it('f16 -> f32 is exact for all 65536 bit patterns (NaN stays NaN, -0 stays -0)', async () => {
    const g = gpu();
    const n = 0x10000;
    const bits = Uint16Array.from({ length: n }, (_, i) => i);
    const x = g.upload('x', 'f16', [n], bits);
    const y = cast(g, x, 'f32', poisoned(g, 'y', 'f32', n));
    const got = await g.read(y);
    for (let h = 0; h < n; h++) {
      const want = f16BitsToF32(h);
      const ok = Number.isNaN(want) ? Number.isNaN(got[h]!) : Object.is(got[h], want);
      if (!ok) expect.fail(`f16 ${hex(h)}: got ${got[h]}, want ${want}`);
    }
    x.release();
    y.release();
  });

  it('f32 -> f16 rounds to nearest even bit-identically to f32ToF16Bits (ties, subnormals, overflow)', async () => {
    const g = gpu();
    const rng = makeRng(17);
    const words: number[] = [];
    // exact ties between adjacent f16 values (and one f32 ulp either side of them)
    for (let k = 0; k < 4000; k++) {
      const h = Math.floor(rng() * 0x7bff);
      const mid = Math.fround((f16BitsToF32(h) + f16BitsToF32(h + 1)) / 2);
      const u = new Uint32Array(new Float32Array([mid]).buffer)[0]!;
      const sign = rng() < 0.5 ? 0x80000000 : 0;
      words.push((u | sign) >>> 0, ((u + 1) | sign) >>> 0, ((u - 1) | sign) >>> 0);
    }
    // random exponents around and beyond the f16 range (f32 exponent 90..160), random mantissas
    for (let k = 0; k < 20000; k++) {
      const exp = 90 + Math.floor(rng() * 70);
      const mant = Math.floor(rng() * 0x800000);
      words.push(((rng() < 0.5 ? 0x80000000 : 0) | (exp << 23) | mant) >>> 0);
    }
    // fully random bit patterns (f32 denormals, NaN payloads, infinities included)
    for (let k = 0; k < 5000; k++) words.push(Math.floor(rng() * 2 ** 32) >>> 0);
    const specials = [
      0,
      -0,
      65504,
      65519.99,
      65520,
      65536,
      1e10,
      Infinity,
      -Infinity,
      NaN,
      2 ** -24,
      2 ** -25,
      2 ** -25 * 1.0000001,
      2 ** -24 * 1.5,
      2 ** -26,
      1e-45,
      -1e-40,
      6.1e-5,
      6.097555e-5,
    ];
    for (const v of specials) words.push(new Uint32Array(new Float32Array([v]).buffer)[0]!);
    const n = words.length; // odd: the last f16 word is half used
    expect(n % 2).toBe(1);
    const values = new Float32Array(Uint32Array.from(words).buffer);
    const x = g.upload('x', 'f32', [n], values);
    const y = cast(g, x, 'f16', poisoned(g, 'y', 'f16', n));
    const got = await readF16Bits(g, y);
    let bad = 0;
    let first = '';
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      const want = f32ToF16Bits(v);
      const ok = Number.isNaN(v) ? (got[i]! & 0x7c00) === 0x7c00 && (got[i]! & 0x3ff) !== 0 : got[i] === want;
      if (!ok && bad++ === 0) first = `f32 ${hex(words[i]!)} (${v}): got ${hex(got[i]!)}, want ${hex(want)}`;
    }
    expect(bad, `${bad} of ${n} wrong, first: ${first}`).toBe(0);
    x.release();
    y.release();
  });

  it('f32 -> f16 overflows to +-inf, never clamps to +-65504 (loss scaling detects it later), NaN stays NaN', async () => {
    const g = gpu();
    const values = [65504, 65519.99, 65520, -65520, 1e6, -3e38, Infinity, -Infinity, NaN];
    const want = [65504, 65504, Infinity, -Infinity, Infinity, -Infinity, Infinity, -Infinity, NaN];
    const x = g.upload('x', 'f32', [values.length], values);
    const y = cast(g, x, 'f16', poisoned(g, 'y', 'f16', values.length));
    expect(Array.from(await g.read(y))).toEqual(want);
    x.release();
    y.release();
  });

  it('round trip f32 -> f16 -> f32 equals castReference, and a same-dtype cast copies', async () => {
    const g = gpu();
    const n = 3001;
    const xv = randn(makeRng(4), n, 100);
    const x = g.upload('x', 'f32', [n], xv);
    const h = cast(g, x, 'f16', poisoned(g, 'h', 'f16', n));
    const back = cast(g, h, 'f32', poisoned(g, 'back', 'f32', n));
    expectClose(await g.read(back), castReference(xv, 'f16'), { rtol: 0, atol: 0 }, 'round trip');
    const copy = cast(g, x, 'f32', poisoned(g, 'copy', 'f32', n));
    expectClose(await g.read(copy), xv, { rtol: 0, atol: 0 }, 'copy');
    for (const t of [x, h, back, copy]) t.release();
  });
});

/** f16 weights and f32 deltas spanning sub-ulp to several ulps, binade edges, zero crossings, overflow. */
function updateCases(rng: () => number, n: number): { w: Float32Array; d: Float32Array } {
  const w = new Float32Array(n);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const kind = i % 5;
    const h = kind === 4 ? Math.floor(rng() * 0x400) : Math.floor(rng() * 0x7800); // subnormals too
    const wv = f16BitsToF32(rng() < 0.5 ? h : h | 0x8000);
    const ulp = Math.max(2 ** -24, Math.abs(f16BitsToF32((h & 0x7fff) + 1) - Math.abs(wv)));
    const mag = [1e-3, 0.3, 1, 7, 1][kind]! * ulp * (rng() * 2 - 1);
    w[i] = wv;
    d[i] = kind === 3 && i % 2 ? -wv + mag : mag; // some sums cross or land near zero
  }
  // near the top of the range: some sums round to inf
  w[0] = 65504;
  d[0] = 16;
  w[1] = -65504;
  d[1] = -31;
  w[2] = 65504;
  d[2] = 1e9;
  return { w, d };
}

describe('applyDelta: weights += alpha * delta', () => {
  it('f32 weights: a plain add', async () => {
    const g = gpu();
    const rng = makeRng(8);
    const n = 4099;
    const [wv, dv] = [randn(rng, n), randn(rng, n)];
    const w = g.upload('w', 'f32', [n], wv);
    const d = g.upload('d', 'f32', [n], dv);
    applyDelta(g, w, d, { alpha: -0.01, seed: 1, step: 1 });
    const want = applyDeltaReference(wv, dv, 'f32', { alpha: -0.01, seed: 1, step: 1 }).values;
    expectClose(await g.read(w), want, { rtol: 1e-6, atol: 1e-7 }, 'f32 add');
    w.release();
    d.release();
  });

  for (const deltaType of ['f32', 'f16'] as const) {
    it(`f16 weights, ${deltaType} delta: rounds to a neighbour of the exact sum, as the reference's draw`, async () => {
      const g = gpu();
      const rng = makeRng(deltaType === 'f32' ? 21 : 22);
      const n = 20001;
      const cases = updateCases(rng, n);
      const dv = deltaType === 'f16' ? Float32Array.from(cases.d, f16Round) : cases.d;
      const w = g.upload('w', 'f16', [n], cases.w);
      const d = g.upload('d', deltaType, [n], dv);
      const options = { alpha: 1, seed: 1234, step: 7 };
      applyDelta(g, w, d, options);
      const got = await g.read(w);
      const ref = applyDeltaReference(cases.w, dv, 'f16', options);
      let mismatches = 0;
      for (let i = 0; i < n; i++) {
        if (Object.is(got[i], ref.values[i]) || got[i] === ref.values[i]) continue;
        // only a draw within f32 rounding of the probability may go the other way
        const s = Math.fround(cases.w[i]! + dv[i]!);
        const near = Math.abs(ref.uniform[i]! - ref.probUp[i]!) < 1e-5;
        const { lower, upper } = stochasticAddNeighbours(cases.w[i]!, dv[i]!);
        if (!near || (got[i] !== lower && got[i] !== upper))
          expect.fail(
            `element ${i}: w ${cases.w[i]} + d ${dv[i]} (f32 sum ${s}): got ${got[i]}, want ${ref.values[i]} ` +
              `(neighbours ${lower}, ${upper}, p ${ref.probUp[i]}, u ${ref.uniform[i]})`,
          );
        mismatches++;
      }
      expect(mismatches).toBeLessThan(5);
      expect(got[2]).toBe(Infinity); // 65504 + 1e9 rounds to nearest: inf
      w.release();
      d.release();
    });
  }

  it('is unbiased: the error averaged over 48 seeds is within statistical bounds, per element and overall', async () => {
    const g = gpu();
    const rng = makeRng(31);
    const n = 2001;
    const seeds = 48;
    const { w: wv, d: dv } = updateCases(rng, n);
    const w = g.tensor('w', 'f16', [n], 'workspace');
    const d = g.upload('d', 'f32', [n], dv);
    const meanNormalizedError = new Float64Array(n); // (result - exact) / (upper - lower), mean over seeds
    for (let seed = 0; seed < seeds; seed++) {
      g.write(w, wv);
      applyDelta(g, w, d, { seed, step: 1 });
      const got = await g.read(w);
      for (let i = 3; i < n; i++) {
        const { lower, upper } = stochasticAddNeighbours(wv[i]!, dv[i]!);
        meanNormalizedError[i]! += (got[i]! - (wv[i]! + dv[i]!)) / (upper - lower) / seeds;
      }
    }
    // each draw's normalized error has mean 0 and variance p(1-p) <= 1/4
    let total = 0;
    let worst = 0;
    for (let i = 3; i < n; i++) {
      total += meanNormalizedError[i]!;
      worst = Math.max(worst, Math.abs(meanNormalizedError[i]!));
    }
    const overall = total / (n - 3);
    expect(Math.abs(overall)).toBeLessThan((5 * 0.5) / Math.sqrt((n - 3) * seeds));
    // per element: 6 sigma over 2000 elements essentially never trips by chance
    expect(worst).toBeLessThan((6 * 0.5) / Math.sqrt(seeds));
    w.release();
    d.release();
  });

  it('updates far below one f16 ulp (even below one f32 ulp) still move the mean', async () => {
    const g = gpu();
    const n = 100001;
    const steps = 64;
    const w = g.upload('w', 'f16', [n], new Float32Array(n).fill(1));
    const tinyUp = g.upload('d', 'f32', [n], new Float32Array(n).fill(2 ** -20)); // 1/1024 of the ulp above 1
    for (let step = 1; step <= steps; step++) applyDelta(g, w, tinyUp, { seed: 5, step });
    const got = await g.read(w);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += (got[i]! - 1) / n;
    // expected rise 64 * 2^-20; the mean's standard deviation is ~2.5e-6 / sqrt(10)
    expect(Math.abs(mean - steps * 2 ** -20)).toBeLessThan(5 * 2 ** -10 * Math.sqrt((steps * 2 ** -10) / n));

    // 1e-8 is below half an f32 ulp of 1 (6e-8): 1 + 1e-8 == 1 in f32, yet the probability is kept
    g.write(w, new Float32Array(n).fill(1));
    const belowF32 = g.upload('d2', 'f32', [n], new Float32Array(n).fill(-1e-8));
    for (let step = 1; step <= steps; step++) applyDelta(g, w, belowF32, { seed: 6, step });
    const got2 = await g.read(w);
    let downs = 0;
    for (let i = 0; i < n; i++) if (got2[i] !== 1) downs++;
    // each draw goes down to 1 - 2^-11 with p = 1e-8 / 2^-11: expected 64 * 100001 * 2.05e-5 = 131
    const expected = steps * n * (1e-8 / 2 ** -11);
    expect(downs).toBeGreaterThan(expected - 5 * Math.sqrt(expected));
    expect(downs).toBeLessThan(expected + 5 * Math.sqrt(expected));
    for (const t of [w, tinyUp, belowF32]) t.release();
  });

  it('is reproducible for one (seed, step) and draws afresh for another', async () => {
    const g = gpu();
    const n = 999;
    const wv = new Float32Array(n).fill(1);
    const d = g.upload('d', 'f32', [n], new Float32Array(n).fill(2 ** -11)); // p = 1/2
    const w = g.upload('w', 'f16', [n], wv);
    const run = async (seed: number, step: number): Promise<Uint16Array> => {
      g.write(w, wv);
      applyDelta(g, w, d, { seed, step });
      return readF16Bits(g, w);
    };
    const a = await run(3, 10);
    expect(Array.from(await run(3, 10))).toEqual(Array.from(a));
    const differs = (b: Uint16Array): number => b.reduce((c, v, i) => c + (v !== a[i] ? 1 : 0), 0);
    expect(differs(await run(3, 11))).toBeGreaterThan(n / 4);
    expect(differs(await run(4, 10))).toBeGreaterThan(n / 4);
    w.release();
    d.release();
  });

  it('rejects mismatched sizes and invalid seeds with messages naming the tensors', () => {
    const g = gpu();
    const w = g.tensor('w', 'f16', [10], 'workspace');
    const d = g.tensor('d', 'f32', [9], 'workspace');
    expect(() => applyDelta(g, w, d, { seed: 0, step: 0 })).toThrow(
      /delta 'd: f32\[9\]' must have as many elements as weights 'w: f16\[10\]'/,
    );
    const d10 = g.tensor('d10', 'f32', [10], 'workspace');
    expect(() => applyDelta(g, w, d10, { seed: -1, step: 0 })).toThrow(/seed must be an integer/);
    for (const t of [w, d, d10]) t.release();
  });
});
