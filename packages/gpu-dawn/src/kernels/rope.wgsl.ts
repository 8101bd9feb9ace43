// Rotary position embedding in Hugging Face's rotate-half convention, in place on x [tokens, heads, D]:
// for i < D/2, with (c, s) = table[pos][i]:
//   forward   x[i] <- x[i] c - x[i + D/2] s,   x[i + D/2] <- x[i + D/2] c + x[i] s
//   backward  the inverse rotation (s -> -s), which is the transpose of the forward.
// One invocation per (token, head, i) pair: it reads both halves before writing, so in place is safe.
// f16 q/k (two halves per u32 word, f32 math, one rounding per result): with D/2 even, one invocation
// per word pair (i, i + 1) and its partner (i + D/2, i + D/2 + 1), in place; with D/2 odd a word's
// partners straddle two words, so each invocation writes one word to a copy (read from the input) and
// the copy goes back afterwards.
import { F16_BITS_WGSL } from './cast.wgsl.js';
import { WGSL_NAN_FN } from './rows.js';

export const ROPE_WG = 256;

/** `positionIds`: positions come from an i32 tensor [tokens]; otherwise offset + t % sequenceLength. */
export function ropeWgsl(positionIds: boolean): string {
  return /* wgsl */ `
struct Params {
  pairs: u32,        // tokens * heads * halfDim
  heads: u32,
  halfDim: u32,
  rowStride: u32,    // invocations per grid row (2D grid for large counts)
  sinSign: f32,      // +1 forward, -1 backward
  offset: u32,
  sequenceLength: u32,
  maxPositions: u32,
}
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<vec2<f32>>;
${positionIds ? '@group(0) @binding(2) var<storage, read> positionIds: array<i32>;' : ''}
@group(0) @binding(${positionIds ? 3 : 2}) var<uniform> p: Params;
${WGSL_NAN_FN}

@compute @workgroup_size(${ROPE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.y * p.rowStride + gid.x;
  if (k >= p.pairs) { return; }
  let i = k % p.halfDim;
  let tokenHead = k / p.halfDim;
  let token = tokenHead / p.heads;
  let lo = tokenHead * 2u * p.halfDim + i;
  let hi = lo + p.halfDim;
  ${positionIds ? 'let pos = positionIds[token];' : 'let pos = i32(p.offset + token % p.sequenceLength);'}
  // A position outside the table would read another position's angles: poison instead, so it shows.
  if (pos < 0 || u32(pos) >= p.maxPositions) {
    x[lo] = quietNan();
    x[hi] = quietNan();
    return;
  }
  let cs = table[u32(pos) * p.halfDim + i];
  let s = cs.y * p.sinSign;
  let a = x[lo];
  let b = x[hi];
  x[lo] = a * cs.x - b * s;
  x[hi] = b * cs.x + a * s;
}
`;
}

const ROPE_PARAMS_WGSL = /* wgsl */ `
struct Params {
  count: u32,        // invocations: word pairs (in place) or words (copy)
  heads: u32,
  halfDim: u32,
  rowStride: u32,
  sinSign: f32,
  offset: u32,
  sequenceLength: u32,
  maxPositions: u32,
}`;

/**
 * f16 x. `inPlace` (halfDim even): invocation k = (token, head, j < halfDim / 2) rotates the words
 * holding elements (2j, 2j + 1) and (halfDim + 2j, halfDim + 2j + 1). Otherwise invocation k = a word
 * of the tensor, computed from `x` into `y` (the caller copies y back).
 */
export function ropeF16Wgsl(positionIds: boolean, inPlace: boolean): string {
  let binding = 0;
  const bind = (decl: string) => `@group(0) @binding(${binding++}) ${decl};`;
  const body = inPlace
    ? `  let quarter = p.halfDim >> 1u;
  let tokenHead = k / quarter;
  let j = k % quarter;
  let wLo = tokenHead * p.halfDim + j; // a head is halfDim words
  let wHi = wLo + quarter;
  let token = tokenHead / p.heads;
  let pos = position(token);
  if (pos < 0 || u32(pos) >= p.maxPositions) {
    x[wLo] = NAN2;
    x[wHi] = NAN2;
    return;
  }
  let t = u32(pos) * p.halfDim + 2u * j;
  let c = vec2<f32>(table[t].x, table[t + 1u].x);
  let s = vec2<f32>(table[t].y, table[t + 1u].y) * p.sinSign;
  let a = unpack(x[wLo]);
  let b = unpack(x[wHi]);
  x[wLo] = pack(a * c - b * s);
  x[wHi] = pack(b * c + a * s);`
    : `  let wordsPerHead = p.halfDim; // headDim / 2 words
  let tokenHead = k / wordsPerHead;
  let token = tokenHead / p.heads;
  let pos = position(token);
  if (pos < 0 || u32(pos) >= p.maxPositions) {
    y[k] = NAN2;
    return;
  }
  let base = tokenHead * 2u * p.halfDim; // element index of the head's first element
  let e0 = 2u * (k % wordsPerHead);
  var out: vec2<f32>;
  for (var h = 0u; h < 2u; h++) {
    let e = e0 + h;
    let lower = e < p.halfDim;
    let i = select(e - p.halfDim, e, lower);
    let cs = table[u32(pos) * p.halfDim + i];
    let s = cs.y * p.sinSign;
    let a = ld(base + i);
    let b = ld(base + i + p.halfDim);
    out[h] = select(b * cs.x + a * s, a * cs.x - b * s, lower);
  }
  y[k] = pack(out);`;
  return /* wgsl */ `
${ROPE_PARAMS_WGSL}
${bind(`var<storage, ${inPlace ? 'read_write' : 'read'}> x: array<u32>`)}
${bind('var<storage, read> table: array<vec2<f32>>')}
${positionIds ? bind('var<storage, read> positionIds: array<i32>') : ''}
${inPlace ? '' : bind('var<storage, read_write> y: array<u32>')}
${bind('var<uniform> p: Params')}
${F16_BITS_WGSL}
const NAN2 = 0x7e007e00u; // two f16 quiet NaNs
fn unpack(w: u32) -> vec2<f32> { return vec2<f32>(f16BitsToF32(w & 0xffffu), f16BitsToF32(w >> 16u)); }
fn pack(v: vec2<f32>) -> u32 { return f32ToF16Bits(v.x) | (f32ToF16Bits(v.y) << 16u); }
fn ld(e: u32) -> f32 { return f16BitsToF32((x[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu); }
fn position(token: u32) -> i32 {
  ${positionIds ? 'return positionIds[token];' : 'return i32(p.offset + token % p.sequenceLength);'}
}

@compute @workgroup_size(${ROPE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.y * p.rowStride + gid.x;
  if (k >= p.count) { return; }
${body}
}
`;
}
