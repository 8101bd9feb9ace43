// fp16 <-> fp32 in plain TypeScript, bit-for-bit the same algorithm as the crate's (round to nearest
// even; every NaN becomes 0x7e00): for preparing fp16 gradients and reading fp16 steps on the main thread.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

function fromBits(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}

/** fp16 bits -> number (exact). */
export function halfToFloat(h: number): number {
  const sign = (h & 0x8000) << 16;
  let o = (h & 0x7fff) << 13;
  const exp = o & 0x0f800000;
  o += 112 << 23;
  if (exp === 0x0f800000) o += 112 << 23;
  else if (exp === 0) o = bitsOf(fromBits(o + (1 << 23)) - fromBits(113 << 23));
  return fromBits((o | sign) >>> 0);
}

/** number -> fp16 bits, rounding first to f32 and then to the nearest even fp16. */
export function floatToHalf(x: number): number {
  let b = bitsOf(x);
  const sign = (b & 0x80000000) >>> 0;
  b = (b ^ sign) >>> 0;
  let o: number;
  if (b >= 143 << 23) o = b > 255 << 23 ? 0x7e00 : 0x7c00;
  else if (b < 113 << 23) {
    // Math.fround(a + b) of two f32 values is their f32 sum: double rounding is innocuous for addition.
    o = bitsOf(Math.fround(fromBits(b) + 0.5)) - (126 << 23);
  } else {
    const mantOdd = (b >>> 13) & 1;
    o = (b - (112 << 23) + 0xfff + mantOdd) >>> 13;
  }
  return o | (sign >>> 16);
}

export function toHalf(src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = floatToHalf(src[i]!);
  return dst;
}

export function fromHalf(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) dst[i] = halfToFloat(src[i]!);
  return dst;
}
