// y[i] = a * x[i] + b * y[i] over f32, one element per invocation; 2D grid so n may exceed 65535 * 256.
export const WORKGROUP_SIZE = 256;

export const axpbyWgsl = /* wgsl */ `
struct Params { n: u32, a: f32, b: f32, rowStride: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.rowStride + gid.x;
  if (i >= p.n) { return; }
  y[i] = p.a * x[i] + p.b * y[i];
}
`;
