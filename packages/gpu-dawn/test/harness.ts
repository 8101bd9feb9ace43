// Shared helpers for kernel tests: one GPU runtime per test file, random inputs, poisoned outputs and
// element-wise comparison with messages that name the first bad element.
import { afterAll, beforeAll, expect } from 'vitest';
import { GpuRuntime, f16BitsToF32, f32ToF16Bits, type GpuRuntimeOptions, type Tensor } from '../src/index.js';
import { makeRng } from './rng.js';

export { makeRng };

/** A GPU runtime for this test file. No adapter is a failure, never a skip. */
export function useGpu(options: GpuRuntimeOptions = {}): () => GpuRuntime {
  let gpu: GpuRuntime | undefined;
  beforeAll(async () => {
    gpu = await GpuRuntime.create(options);
  });
  afterAll(() => gpu?.destroy());
  return () => {
    if (!gpu) throw new Error('GPU runtime not created (beforeAll failed?)');
    return gpu;
  };
}

/** Uniform(-scale, scale) floats. */
export function randomArray(rng: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng() * 2 - 1) * scale;
  return a;
}

/** Standard normal floats (Box-Muller). */
export function randn(rng: () => number, n: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12);
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    a[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) a[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return a;
}

export const NAN_BITS = 0x7fc00000;

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/** |got - want| <= atol + rtol * |want| element-wise; NaN in got (unwritten poison) always fails. */
export function expectClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
  what: string,
): void {
  const { rtol = 1e-5, atol = 1e-6 } = tol;
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = -1;
  let worstExcess = 0;
  let bad = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const lim = atol + rtol * Math.abs(w);
    const err = Math.abs(g - w);
    if (!(err <= lim) && !(Number.isNaN(w) && Number.isNaN(g)) && !(g === w)) {
      bad++;
      const excess = Number.isNaN(err) ? Infinity : err / lim;
      if (excess > worstExcess || worst < 0) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (bad) {
    expect.fail(
      `${what}: ${bad} of ${want.length} elements out of tolerance (rtol ${rtol}, atol ${atol}); ` +
        `worst at [${worst}]: got ${got[worst]}, want ${want[worst]}`,
    );
  }
}

/** Relative L2 error ||got - want|| / ||want||. */
export function relL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i]! - want[i]!;
    num += d * d;
    den += want[i]! * want[i]!;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** Two f16 quiet NaNs in one 32-bit word: poisons both halves of f16 storage (NAN_BITS's low half is 0). */
export const F16_NAN_PAIR = 0x7e007e00;

/** A workspace tensor whose every element (f32 or f16) reads as NaN until written. */
export function poisonedTensor(g: GpuRuntime, label: string, dtype: 'f32' | 'f16', shape: number[]): Tensor {
  const t = g.tensor(label, dtype, shape, 'workspace');
  g.fill32(t, dtype === 'f16' ? F16_NAN_PAIR : NAN_BITS);
  return t;
}

/** Ordered integer key of an f16 value (sign * magnitude bits): adjacent f16 values differ by 1. */
function f16Key(v: number): number {
  const bits = f32ToF16Bits(v);
  return bits & 0x8000 ? -(bits & 0x7fff) : bits;
}

export interface F16Tolerance {
  /** f16 steps allowed between got and the reference rounded to f16 (default 1). */
  ulps?: number;
  /** Absolute error also accepted (for results that cancel below f32's resolution of their terms). */
  atol?: number;
}

/**
 * f16 outputs against a float64 reference: got[i] (an f16 value) lies within `ulps` f16 steps of want[i]
 * rounded to f16 (the exactly rounded result), or within atol of want[i]. inf/NaN must match exactly.
 */
export function expectF16Close(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: F16Tolerance,
  what: string,
): void {
  const { ulps = 1, atol = 0 } = tol;
  expect(got.length, `${what}: length`).toBe(want.length);
  let bad = 0;
  let first = '';
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const rounded = f16BitsToF32(f32ToF16Bits(w));
    let ok: boolean;
    if (Number.isNaN(w)) ok = Number.isNaN(g);
    else if (!Number.isFinite(rounded)) ok = g === rounded;
    else
      ok = Number.isFinite(g) && (Math.abs(f16Key(g) - f16Key(rounded)) <= ulps || Math.abs(g - w) <= atol);
    if (!ok && bad++ === 0) first = `[${i}]: got ${g}, want ${w} (f16 ${rounded})`;
  }
  if (bad)
    expect.fail(
      `${what}: ${bad} of ${want.length} f16 elements beyond ${ulps} ulp (atol ${atol}); first ${first}`,
    );
}
