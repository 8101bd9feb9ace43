// f16 / bf16 conversions against an independent float64 reference: the nearest representable value,
// found by binary search over all finite values of the format, ties to the even bit pattern.
import { describe, expect, it } from 'vitest';
import {
  bf16BitsToFloat32,
  f16BitsToFloat32,
  float32ToBf16Bits,
  float32ToF16Bits,
  float64ToF16Bits,
} from '../../src/hf/index.js';
import { seededRandom } from './helpers.js';

/** Every non-negative value of a 16-bit format in bit order, with the infinity pattern standing for the next power of two. */
function positiveValues(
  decode: (bits: number) => number,
  infinityBits: number,
  beyondMax: number,
): Float64Array {
  const values = new Float64Array(infinityBits + 1);
  for (let b = 0; b < infinityBits; b++) values[b] = decode(b);
  values[infinityBits] = beyondMax;
  return values;
}

const f16Values = positiveValues(
  (b) => {
    const e = b >> 10;
    const m = b & 0x3ff;
    return e === 0 ? m * Math.pow(2, -24) : (1 + m / 1024) * Math.pow(2, e - 15);
  },
  0x7c00,
  65536,
);
const bf16Values = positiveValues(
  (b) => {
    const e = b >> 7;
    const m = b & 0x7f;
    return e === 0 ? m * Math.pow(2, -133) : (1 + m / 128) * Math.pow(2, e - 127);
  },
  0x7f80,
  Math.pow(2, 128),
);

/** Round to nearest, ties to even, by search: an oracle that shares no code with the library. */
function nearestBits(
  x: number,
  values: Float64Array,
  infinityBits: number,
  nanBits: number,
  signBit: number,
): number {
  if (Number.isNaN(x)) return nanBits;
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const a = Math.abs(x);
  if (a >= values[infinityBits]!) return sign | infinityBits;
  let lo = 0;
  let hi = infinityBits;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (values[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const midpoint = (values[lo]! + values[hi]!) / 2;
  const bits = a < midpoint ? lo : a > midpoint ? hi : lo % 2 === 0 ? lo : hi;
  return sign | bits;
}

const f16Reference = (x: number): number => nearestBits(x, f16Values, 0x7c00, 0x7e00, 0x8000);
const bf16Reference = (x: number): number => nearestBits(x, bf16Values, 0x7f80, 0x7fc0, 0x8000);

/** Odd-sized test data: random magnitudes, random bit patterns, exact ties, subnormals, inf, nan. */
function testFloats(seed: number, ties: Float64Array): Float64Array {
  const random = seededRandom(seed);
  const out: number[] = [
    0,
    -0,
    Infinity,
    -Infinity,
    NaN,
    65504,
    65519.99,
    65520,
    -65520,
    65536,
    1e-8,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -26,
    2 ** -14,
  ];
  for (let i = 0; i < 2001; i++)
    out.push((random() < 0.5 ? -1 : 1) * random() * 2 ** Math.floor(random() * 60 - 35));
  const bits = new Uint32Array(1);
  const asFloat = new Float32Array(bits.buffer);
  for (let i = 0; i < 2001; i++) {
    bits[0] = Math.floor(random() * 2 ** 32);
    out.push(asFloat[0]!);
  }
  for (let i = 0; i < 1001; i++) {
    const b = Math.floor(random() * (ties.length - 1));
    out.push((random() < 0.5 ? -1 : 1) * ((ties[b]! + ties[b + 1]!) / 2));
  }
  return Float64Array.from(out);
}

function bitsEqual(
  actual: Uint16Array,
  expected: (x: number) => number,
  inputs: ArrayLike<number>,
  infinityBits = 0x7c00,
): void {
  const isNaNBits = (bits: number): boolean => (bits & 0x7fff) > infinityBits;
  const mismatches: string[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const want = expected(inputs[i]!);
    const got = actual[i]!;
    // Any NaN pattern is a right answer for a NaN input.
    const bothNaN = isNaNBits(got) && isNaNBits(want);
    if (got !== want && !bothNaN)
      mismatches.push(`${inputs[i]} -> 0x${got.toString(16)}, want 0x${want.toString(16)}`);
  }
  expect(mismatches.slice(0, 5)).toEqual([]);
}

describe('f16', () => {
  it('widens all 65536 patterns exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const widened = f16BitsToFloat32(all);
    const wrong: number[] = [];
    for (let b = 0; b < 65536; b++) {
      const magnitude = b & 0x7fff;
      const sign = b & 0x8000 ? -1 : 1;
      const v = widened[b]!;
      const want =
        magnitude > 0x7c00 ? NaN : magnitude === 0x7c00 ? sign * Infinity : sign * f16Values[magnitude]!;
      if (!Object.is(v, want) && !(Number.isNaN(v) && Number.isNaN(want))) wrong.push(b);
    }
    expect(wrong).toEqual([]);
    expect(Array.from(f16BitsToFloat32(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400)))).toEqual([
      1,
      -2,
      65504,
      2 ** -24,
      2 ** -14,
    ]);
  });

  it('rounds f32 to nearest even, including subnormals, overflow, inf and nan', () => {
    const inputs = Float32Array.from(testFloats(1, f16Values));
    // The inputs went through f32 first; the reference sees exactly those values.
    bitsEqual(float32ToF16Bits(inputs), f16Reference, inputs);
  });

  it('rounds f64 to nearest even once (no double rounding through f32)', () => {
    const inputs = testFloats(2, f16Values);
    // Just above a tie whose even neighbour is below: f64 must round up, while rounding to f32 first
    // lands exactly on the tie and then goes down to the even neighbour.
    const tie = (f16Values[1026]! + f16Values[1027]!) / 2;
    const extra = Float64Array.of(tie + tie * 2 ** -40, tie - tie * 2 ** -40);
    const all = Float64Array.from([...inputs, ...extra]);
    bitsEqual(float64ToF16Bits(all), f16Reference, all);
    expect(float32ToF16Bits(Float32Array.of(extra[0]!))[0]).not.toBe(f16Reference(extra[0]!));
  });

  it('round-trips every non-NaN pattern through f32', () => {
    const all = new Uint16Array(65536).map((_, i) => i).filter((b) => (b & 0x7fff) <= 0x7c00);
    expect(Array.from(float32ToF16Bits(f16BitsToFloat32(all)))).toEqual(Array.from(all));
  });
});

describe('bf16', () => {
  it('widens by a shift, keeps inf and nan', () => {
    const out = bf16BitsToFloat32(Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0xff80, 0x7fc0, 0x0001));
    expect(Array.from(out.slice(0, 4))).toEqual([1, -2, Infinity, -Infinity]);
    expect(Number.isNaN(out[4])).toBe(true);
    expect(out[5]).toBe(2 ** -133);
  });

  it('rounds f32 to nearest even, including subnormals, inf and nan', () => {
    const inputs = Float32Array.from(testFloats(3, bf16Values));
    bitsEqual(float32ToBf16Bits(inputs), bf16Reference, inputs, 0x7f80);
    const nan = float32ToBf16Bits(Float32Array.of(NaN))[0]!;
    expect((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0).toBe(true);
  });
});
