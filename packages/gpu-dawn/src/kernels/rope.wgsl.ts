// Rotary position embedding in Hugging Face's rotate-half convention, in place on x [tokens, heads, D]:
// for i < D/2, with (c, s) = table[pos][i]:
//   forward   x[i] <- x[i] c - x[i + D/2] s,   x[i + D/2] <- x[i + D/2] c + x[i] s
//   backward  the inverse rotation (s -> -s), which is the transpose of the forward.
// One invocation per (token, head, i) pair: it reads both halves before writing, so in place is safe.
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
