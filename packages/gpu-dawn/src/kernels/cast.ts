// Casts f32 <-> f16 (round to nearest even, bit-identical to dtype.ts) and adding an update into weights:
// plain f32 add, or for f16 weights an add with stochastic rounding, so updates far below one f16 ulp
// still move the weights on average (round to nearest would drop them: LSP.md, "Memory").
import { f16BitsToF32, f16Round, f32ToF16Bits } from '../dtype.js';
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { COUNTER_RNG_WGSL, STOCHASTIC_ADD_F16_WGSL } from './cast.wgsl.js';
import { floatDType, runElementwise, type ElementwiseSpec, type FloatDType } from './elementwise.js';

const CAST: ElementwiseSpec = { op: 'cast', inputs: [{ name: 'x' }], outputs: ['y'], body: 'o.y = x;' };

/**
 * y = x converted to `dtype` (f32 -> f16 rounds to nearest even, overflow to inf; f16 -> f32 is exact).
 * A same-dtype cast is a copy.
 */
export function cast(gpu: GpuRuntime, x: Tensor, dtype: FloatDType, out?: Tensor): Tensor {
  floatDType(x, 'cast');
  const y = out ?? gpu.tensor(`cast.${dtype}`, dtype, x.shape, 'activations');
  if (y.dtype !== dtype) throw new Error(`cast: output '${y}' must be ${dtype}`);
  if (y.numel !== x.numel) throw new Error(`cast: output '${y}' must have as many elements as '${x}'`);
  if (y === x) return y;
  runElementwise(gpu, CAST, { n: x.numel, inputs: { x }, outputs: { y } });
  return y;
}

export function castReference(x: ArrayLike<number>, dtype: FloatDType): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = dtype === 'f16' ? f16Round(x[i]!) : Math.fround(x[i]!);
  return out;
}

// ---- adding updates: w += alpha * delta ----------------------------------------------------------------------

export interface ApplyDeltaOptions {
  /** Multiplies delta (e.g. -lr); default 1. */
  alpha?: number;
  /**
   * Random stream of the stochastic rounding (f16 weights): element i at (seed, step) always draws the
   * same number. Use a distinct seed per tensor and a new step per update: reusing a (seed, step) pair
   * for repeated updates of the same weights makes every update round the same way, which is biased.
   */
  seed: number;
  step: number;
}

const APPLY_DELTA_F32: ElementwiseSpec = {
  op: 'apply_delta_f32',
  inputs: [{ name: 'w' }, { name: 'delta' }],
  outputs: ['wOut'],
  uniforms: [{ name: 'alpha', type: 'f32' }],
  body: 'o.wOut = w + p.alpha * delta;',
};

const APPLY_DELTA_F16: ElementwiseSpec = {
  op: 'apply_delta_f16_stochastic',
  inputs: [{ name: 'w' }, { name: 'delta' }],
  outputs: ['wOut'],
  uniforms: [
    { name: 'alpha', type: 'f32' },
    { name: 'seed', type: 'u32' },
    { name: 'step', type: 'u32' },
  ],
  helpers: COUNTER_RNG_WGSL + STOCHASTIC_ADD_F16_WGSL,
  // the result is an f16 value, so the output's round-to-nearest store keeps it exactly
  body: 'o.wOut = stochasticAddF16(w, p.alpha * delta, counterUniform(i, p.seed, p.step));',
};

/**
 * weights += alpha * delta, in place. f32 weights: a plain add. f16 weights: the exact sum is rounded to
 * one of its two neighbouring f16 values with probability proportional to the distance (unbiased).
 * delta may be f32 or f16 and must have as many elements as the weights.
 */
export function applyDelta(
  gpu: GpuRuntime,
  weights: Tensor,
  delta: Tensor,
  options: ApplyDeltaOptions,
): void {
  const wType = floatDType(weights, 'applyDelta');
  floatDType(delta, 'applyDelta');
  if (delta.numel !== weights.numel)
    throw new Error(`applyDelta: delta '${delta}' must have as many elements as weights '${weights}'`);
  checkU32('applyDelta', 'seed', options.seed);
  checkU32('applyDelta', 'step', options.step);
  const alpha = options.alpha ?? 1;
  runElementwise(gpu, wType === 'f16' ? APPLY_DELTA_F16 : APPLY_DELTA_F32, {
    label: `applyDelta(${weights.label})`,
    n: weights.numel,
    inputs: { w: weights, delta },
    outputs: { wOut: weights },
    uniforms: { alpha, seed: options.seed, step: options.step },
  });
}

function checkU32(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
    throw new RangeError(`${op}: ${name} must be an integer in [0, 2^32), got ${v}`);
}

/** TS mirror of the WGSL counterUniform (PCG3D): the uniform [0, 1) element `index` draws at (seed, step). */
export function stochasticUniform(index: number, seed: number, step: number): number {
  let x = (Math.imul(index >>> 0, 1664525) + 1013904223) >>> 0;
  let y = (Math.imul(seed >>> 0, 1664525) + 1013904223) >>> 0;
  let z = (Math.imul(step >>> 0, 1664525) + 1013904223) >>> 0;
  x = (x + Math.imul(y, z)) >>> 0;
  y = (y + Math.imul(z, x)) >>> 0;
  z = (z + Math.imul(x, y)) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  y = (y ^ (y >>> 16)) >>> 0;
  z = (z ^ (z >>> 16)) >>> 0;
  x = (x + Math.imul(y, z)) >>> 0;
  return (x >>> 8) / 16777216;
}

/** Ordered key of an f16 value: sign * magnitude bits (adjacent keys are adjacent f16 values). */
function f16Key(value: number): number {
  const bits = f32ToF16Bits(value);
  const mag = bits & 0x7fff;
  return bits & 0x8000 ? -mag : mag;
}

/** f16 value of a key; one step past the largest finite f16 (+-0x7c00) counts as +-65536 here. */
function f16KeyValue(key: number): number {
  const mag = Math.abs(key);
  const v = mag === 0x7c00 ? 65536 : f16BitsToF32(mag);
  return key < 0 ? -v : v;
}

export interface StochasticAddResult {
  /** The f16 neighbours of the exact sum, lower <= w + d < upper (upper may be 65536 = inf). */
  lower: number;
  upper: number;
  /** Probability of rounding to `upper`. */
  probUp: number;
}

/** Float64 analysis of w + d rounded stochastically to f16 (w an f16 value, |w + d| < 65536). */
export function stochasticAddNeighbours(w: number, d: number): StochasticAddResult {
  const exact = w + d;
  let key = f16Key(exact);
  if (f16KeyValue(key) > exact) key--;
  const lower = f16KeyValue(key);
  const upper = f16KeyValue(key + 1);
  return { lower, upper, probUp: (exact - lower) / (upper - lower) };
}

/**
 * Float64 reference of applyDelta. f32 weights: w + alpha*delta rounded to f32. f16 weights: the exact
 * sum rounded up where the element's uniform (same counter RNG as the GPU) is below probUp; a GPU result
 * may differ only where the uniform lies within f32 rounding of probUp.
 */
export function applyDeltaReference(
  weights: ArrayLike<number>,
  delta: ArrayLike<number>,
  dtype: FloatDType,
  options: ApplyDeltaOptions,
): { values: Float64Array; probUp: Float64Array; uniform: Float64Array } {
  const n = weights.length;
  if (delta.length !== n) throw new Error(`applyDeltaReference: ${n} weights, ${delta.length} deltas`);
  const alpha = Math.fround(options.alpha ?? 1); // the GPU gets alpha as an f32 uniform
  const values = new Float64Array(n);
  const probUp = new Float64Array(n);
  const uniform = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = Math.fround(alpha * delta[i]!);
    if (dtype === 'f32') {
      values[i] = Math.fround(weights[i]! + d);
      continue;
    }
    const w = weights[i]!;
    const exact = w + d;
    if (!(Math.abs(Math.fround(exact)) < 65536)) {
      values[i] = f16Round(exact);
      continue;
    }
    const { lower, upper, probUp: pu } = stochasticAddNeighbours(w, d);
    const u = stochasticUniform(i, options.seed, options.step);
    probUp[i] = pu;
    uniform[i] = u;
    const chosen = u < pu ? upper : lower;
    values[i] = Math.abs(chosen) === 65536 ? Math.sign(chosen) * Infinity : chosen;
  }
  return { values, probUp, uniform };
}
