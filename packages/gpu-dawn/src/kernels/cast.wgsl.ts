// WGSL building blocks for f16 storage without the shader-f16 feature: f16 values live two per u32 word
// (element 2k in the low half, as array<f16> would lay them out), converted by integer bit manipulation so
// results are bit-identical to the TS f32ToF16Bits on every driver (WGSL leaves the rounding direction of
// f32 -> f16 conversions and pack2x16float to the implementation). Also a counter-based RNG and the
// stochastically rounded f16 add used to apply small updates to f16 weights.

/** f16 bits <-> f32, exact, round to nearest even (overflow -> inf, NaN -> quiet NaN), like dtype.ts. */
export const F16_BITS_WGSL = /* wgsl */ `
fn f16BitsToF32(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let exp = (h >> 10u) & 0x1fu;
  let mant = h & 0x3ffu;
  if (exp == 0u) {
    // zero or subnormal: mant * 2^-24 is exact (and normal) in f32
    return bitcast<f32>(bitcast<u32>(ldexp(f32(mant), -24)) | sign);
  }
  if (exp == 31u) { return bitcast<f32>(sign | 0x7f800000u | (mant << 13u)); }
  return bitcast<f32>(sign | ((exp + 112u) << 23u) | (mant << 13u));
}

fn f32ToF16Bits(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sign = (x >> 16u) & 0x8000u;
  let exp = (x >> 23u) & 0xffu;
  var mant = x & 0x7fffffu;
  if (exp == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u, mant != 0u); }
  let e = i32(exp) - 112;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    mant = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    let rest = mant & ((1u << shift) - 1u);
    var hs = mant >> shift;
    if (rest > half || (rest == half && (hs & 1u) == 1u)) { hs = hs + 1u; }
    return sign | hs;
  }
  var h = (u32(e) << 10u) | (mant >> 13u);
  let rest = mant & 0x1fffu;
  // a carry out of the mantissa correctly bumps the exponent (up to inf)
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u)) { h = h + 1u; }
  return sign | h;
}
`;

/**
 * Counter-based uniform [0, 1) from (index, seed, step): the PCG3D hash (Jarzynski & Olano 2020) of the
 * three counters, top 24 bits. Reproducible, no state; a distinct (seed, step) gives an independent
 * stream. Mirrored bit for bit by `stochasticUniform` in cast.ts.
 */
export const COUNTER_RNG_WGSL = /* wgsl */ `
fn pcg3d(v0: vec3<u32>) -> vec3<u32> {
  var v = v0 * 1664525u + vec3<u32>(1013904223u);
  v.x += v.y * v.z;
  v.y += v.z * v.x;
  v.z += v.x * v.y;
  v = v ^ (v >> vec3<u32>(16u));
  v.x += v.y * v.z;
  v.y += v.z * v.x;
  v.z += v.x * v.y;
  return v;
}

fn counterUniform(index: u32, seed: u32, step: u32) -> f32 {
  return f32(pcg3d(vec3<u32>(index, seed, step)).x >> 8u) * (1.0 / 16777216.0);
}
`;

/**
 * w + d rounded to f16 stochastically: with lo <= w + d < hi the two adjacent f16 values around the sum,
 * the result is hi with probability (w + d - lo) / (hi - lo), else lo, so its mean is the exact sum.
 * w is an f16 value (as f32), d any f32. The remainder (w - lo) + d is formed without first rounding
 * w + d to f32, so even a d far below one f32 ulp of w keeps its probability (a plain f32 sum would drop
 * it). f16 values are ordered by an integer key (sign * magnitude bits); the value one step past the
 * largest finite f16 is treated as 65536, so sums in (65504, 65536) go to inf with the matching
 * probability; sums at or beyond 65536, inf and NaN round to nearest. Needs F16_BITS_WGSL.
 */
export const STOCHASTIC_ADD_F16_WGSL = /* wgsl */ `
fn f16KeyValue(k: i32) -> f32 {
  // magnitude bits decoded as if exponent 31 were a normal binade: 0x7c00 -> 65536
  let m = u32(abs(k));
  let e = m >> 10u;
  var mag: f32;
  if (e == 0u) { mag = ldexp(f32(m), -24); } else { mag = ldexp(f32((m & 0x3ffu) | 0x400u), i32(e) - 25); }
  return select(mag, -mag, k < 0);
}

// the largest f16 key whose value is <= s, for finite |s| < 65536
fn f16FloorKey(s: f32) -> i32 {
  let x = bitcast<u32>(s);
  let a = x & 0x7fffffffu;
  let mant = a & 0x7fffffu;
  let e = i32(a >> 23u) - 112;
  var m: u32;
  var exact: bool;
  if (e <= 0) {
    if (e < -10) {
      m = 0u;
      exact = a == 0u;
    } else {
      let full = mant | 0x800000u;
      let shift = u32(14 - e);
      m = full >> shift;
      exact = (full & ((1u << shift) - 1u)) == 0u;
    }
  } else {
    m = (u32(e) << 10u) | (mant >> 13u);
    exact = (mant & 0x1fffu) == 0u;
  }
  if ((x >> 31u) == 0u) { return i32(m); }
  return -i32(m) - select(1, 0, exact);
}

fn stochasticAddF16(w: f32, d: f32, u: f32) -> f32 {
  let s = w + d;
  if ((bitcast<u32>(s) & 0x7fffffffu) >= 0x47800000u) { return s; } // |s| >= 65536, inf or NaN
  var k = f16FloorKey(s);
  var lo = f16KeyValue(k);
  var hi = f16KeyValue(k + 1);
  var r = (w - lo) + d;
  // s is w + d rounded to f32, so its floor can be one f16 step off the exact sum's: correct it
  if (r < 0.0) {
    k = k - 1;
    hi = lo;
    lo = f16KeyValue(k);
    r = (w - lo) + d;
  } else if (r >= hi - lo) {
    k = k + 1;
    lo = hi;
    hi = f16KeyValue(k + 1);
    r = (w - lo) + d;
  }
  let key = clamp(select(k, k + 1, u < r / (hi - lo)), -0x7c00, 0x7c00);
  // +-inf from bits of the (same-signed) sum: a constant inf would be a WGSL shader-creation error
  if (abs(key) == 0x7c00) { return bitcast<f32>(0x7f800000u | (bitcast<u32>(s) & 0x80000000u)); }
  return f16KeyValue(key);
}
`;
