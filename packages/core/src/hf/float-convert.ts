// Conversions between f32/f64 and the 16-bit float formats checkpoints use (IEEE f16 and bfloat16).
// Node 20 has no Float16Array, so 16-bit floats travel as their raw bits in Uint16Arrays; the GPU takes
// f16 bits directly. Every narrowing conversion rounds to nearest, ties to even, like PyTorch's `.half()`.

/** f16 bits -> value, for all 65536 patterns: one table lookup per element beats bit arithmetic. */
let f16Table: Float32Array | undefined;

function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    let value: number;
    if (exponent === 0) value = mantissa * 2 ** -24;
    else if (exponent === 0x1f) value = mantissa === 0 ? Infinity : NaN;
    else value = (1024 + mantissa) * 2 ** (exponent - 25);
    table[bits] = sign * value;
  }
  f16Table = table;
  return table;
}

export function f16BitsToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const table = f16ToF32Table();
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

export function bf16BitsToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  // bfloat16 is the top half of an f32: widening is a shift.
  const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i]! << 16;
  return out;
}

/** One f32 (given as its bits) -> f16 bits, round to nearest even; NaN stays NaN (quiet). */
export function float32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal f16 (or zero): the value in units of 2^-24, with the implicit bit made explicit.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa bumps the exponent, and out of the top exponent gives inf: both right.
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) !== 0)) half++;
  return sign | half;
}

export function float32ToF16Bits(values: Float32Array, out = new Uint16Array(values.length)): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32BitsToF16Bits(bits[i]!);
  return out;
}

/** One f32 (given as its bits) -> bf16 bits, round to nearest even; NaN stays NaN (quiet). */
export function float32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function float32ToBf16Bits(values: Float32Array, out = new Uint16Array(values.length)): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32BitsToBf16Bits(bits[i]!);
  return out;
}

/**
 * One f64 -> f16 bits, rounded once from the f64 value. Going through f32 would round twice, which
 * can land one ulp off on ties; f64 sources are rare (references), so plain arithmetic is fine.
 */
export function float64ToF16BitsOne(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65520 is halfway between the largest f16 (65504) and 2^16: ties to even go to infinity.
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24);
  let exponent = Math.floor(Math.log2(a));
  if (2 ** exponent > a) exponent--;
  if (2 ** (exponent + 1) <= a) exponent++;
  const mantissa = roundHalfEven(a * 2 ** (10 - exponent));
  // mantissa is in [1024, 2048]; 2048 carries into the exponent, which the bit layout does by itself.
  return sign | (((exponent + 15) << 10) + mantissa - 1024);
}

function roundHalfEven(q: number): number {
  const floor = Math.floor(q);
  const rest = q - floor;
  return rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
}

export function float64ToF16Bits(values: Float64Array, out = new Uint16Array(values.length)): Uint16Array {
  for (let i = 0; i < values.length; i++) out[i] = float64ToF16BitsOne(values[i]!);
  return out;
}
