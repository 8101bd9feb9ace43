// Shared helpers for kernel tests: one GPU runtime per test file, random inputs, poisoned outputs and
// element-wise comparison with messages that name the first bad element.
import { afterAll, beforeAll, expect } from 'vitest';
import { GpuRuntime, type GpuRuntimeOptions } from '../src/index.js';
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
