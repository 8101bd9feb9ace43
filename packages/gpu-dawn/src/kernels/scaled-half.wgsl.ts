// fp16 with a per-tensor power-of-two scale: the scale is computed on the GPU from the tensor's max |x| so
// the largest value lands in [2^14, 2^15) and the fp16 values use the format's range; one invocation
// packs a pair of elements into one u32 word (element 2k in the low half, as array<f16> would lay them
// out), with the integer f32 -> f16 conversion of F16_BITS_WGSL (no shader-f16 needed).
import { F16_BITS_WGSL } from './cast.wgsl.js';

export const SCALED_HALF_WORKGROUP_SIZE = 256;

/** The exponent the largest value is moved to (just under it: max |x| * scale < 2^15, below 65504). */
export const SCALED_HALF_TOP_EXPONENT = 14;

export const packScaledHalfWgsl = /* wgsl */ `
${F16_BITS_WGSL}
struct Params { n: u32, rowStride: u32, absIndex: u32, scaleIndex: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> absMax: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read_write> scaleOut: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

// 2^(${SCALED_HALF_TOP_EXPONENT} - floor(log2 a)) from the exponent bits of a, clamped to a finite f32
// power of two; 1 for a zero or non-finite max (nothing to scale, or the step is skipped anyway).
fn scaleFor(a: f32) -> f32 {
  let bits = bitcast<u32>(a) & 0x7fffffffu;
  let exp = bits >> 23u;
  if (bits == 0u || exp == 0xffu) { return 1.0; }
  let e = clamp(${SCALED_HALF_TOP_EXPONENT} - (i32(exp) - 127), -126, 127);
  return bitcast<f32>(u32(e + 127) << 23u);
}

@compute @workgroup_size(${SCALED_HALF_WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pair = gid.y * p.rowStride + gid.x;
  let s = scaleFor(absMax[p.absIndex]);
  if (pair == 0u) { scaleOut[p.scaleIndex] = bitcast<u32>(s); }
  let i = 2u * pair;
  if (i >= p.n) { return; }
  let lo = f32ToF16Bits(src[i] * s);
  var hi = 0u;
  if (i + 1u < p.n) { hi = f32ToF16Bits(src[i + 1u] * s); }
  dst[pair] = lo | (hi << 16u);
}
`;
