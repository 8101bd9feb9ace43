// General sparse (CSR) x dense products, used where the sparsity is not r-per-row: moving optimizer
// moments into a refitted projector subspace (A_L = P1^T P0 and A_R = Q0^T Q1 are sparse d x d).
export const CSR_WG = 64;

const common = /* wgsl */ `
struct Params { rows: u32, cols: u32, inner: u32, rowOffset: u32 }
@group(0) @binding(0) var<storage, read> rowPtr: array<u32>;
@group(0) @binding(1) var<storage, read> colIdx: array<u32>;
@group(0) @binding(2) var<storage, read> vals: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;`;

/** out[a, c] = sum_e vals[e] x[colIdx[e], c] over row a of A: out = A X (A: rows x inner, X: inner x cols). */
export const csrLeftWgsl = /* wgsl */ `
${common}
@compute @workgroup_size(${CSR_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let a = gid.y + p.rowOffset;
  if (c >= p.cols || a >= p.rows) { return; }
  var acc = 0.0;
  for (var e = rowPtr[a]; e < rowPtr[a + 1u]; e++) {
    acc += vals[e] * x[colIdx[e] * p.cols + c];
  }
  out[a * p.cols + c] = acc;
}
`;

/** out[t, a] = sum_e vals[e] x[t, colIdx[e]] over row a of A: out = X A^T (X: rows x inner, A: cols x inner). */
export const csrRightTWgsl = /* wgsl */ `
${common}
@compute @workgroup_size(${CSR_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let a = gid.x;
  let t = gid.y + p.rowOffset;
  if (a >= p.cols || t >= p.rows) { return; }
  var acc = 0.0;
  let xRow = t * p.inner;
  for (var e = rowPtr[a]; e < rowPtr[a + 1u]; e++) {
    acc += vals[e] * x[xRow + colIdx[e]];
  }
  out[t * p.cols + a] = acc;
}
`;
