// Copy a block of columns between two row-major f32 or f16 matrices with different row lengths: GPT-2's
// fused c_attn output [T, 3C] is split into contiguous q, k, v for attention, and their gradients are
// packed back.
export const COLUMNS_WG = 64;

export const copyColumnsWgsl = (
  dtype: 'f32' | 'f16',
): string => /* wgsl */ `${dtype === 'f16' ? 'enable f16;' : ''}
struct Params { rows: u32, width: u32, srcLd: u32, srcCol: u32, dstLd: u32, dstCol: u32, rowOffset: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> src: array<${dtype}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${dtype}>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${COLUMNS_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let t = gid.y + p.rowOffset;
  if (j >= p.width || t >= p.rows) { return; }
  dst[t * p.dstLd + p.dstCol + j] = src[t * p.srcLd + p.srcCol + j];
}
`;
