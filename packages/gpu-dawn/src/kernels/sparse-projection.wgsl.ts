// WGSL for (d, r)-sparse projectors. A projector P (rows x d) has exactly r non-zeros per row, stored
// row-wise (positions[i*r+k] < d, values[i*r+k]) and column-wise (CSC: colPtr[d+1], colEntry = i*r+k sorted
// by column, colValues = values[colEntry]) so every kernel is a gather: deterministic, no float atomics.
// 2D kernels cover more than 65535 grid rows by a row offset the host advances per dispatch; 1D kernels
// use a 2D grid with `stride` invocations per grid row.

import { F16_BITS_WGSL, STOCHASTIC_ADD_F16_WGSL } from './cast.wgsl.js';

export const SPARSE_WG = 64;

const paramsStruct = /* wgsl */ `
struct Params { rowsOut: u32, cols: u32, inner: u32, r: u32, rowOffset: u32, alpha: f32, seed: u32, stride: u32 }`;

/** Tokens per invocation of gatherColumns: each column-index entry loaded once serves this many rows. */
export const GATHER_ROWS = 8;

export type GatherFloat = 'f32' | 'f16';

const f16Enable = (...types: GatherFloat[]) => (types.includes('f16') ? 'enable f16;' : '');

/**
 * out[t, j] = sum_{i} x[t, i] P[i, j]   (x: T x rows, out: T x d), via P's columns. An invocation owns
 * column j of GATHER_ROWS consecutive tokens: the column's entries (row, value) are read once for all of
 * them, instead of once per token. Each output sums its entries in the same order as a one-row kernel.
 * x and out are f32 or f16 (f32 sums).
 */
export function gatherColumnsWgsl(xType: GatherFloat, outType: GatherFloat): string {
  return /* wgsl */ `${f16Enable(xType, outType)}
${paramsStruct}
@group(0) @binding(0) var<storage, read> x: array<${xType}>;
@group(0) @binding(1) var<storage, read> colPtr: array<u32>;
@group(0) @binding(2) var<storage, read> colEntry: array<u32>;
@group(0) @binding(3) var<storage, read> colValues: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<${outType}>;
@group(0) @binding(5) var<uniform> p: Params;
// rowsOut = T, cols = d, inner = rows of P (x row length); grid rows count groups of ${GATHER_ROWS} tokens
@compute @workgroup_size(${SPARSE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let t0 = (gid.y + p.rowOffset) * ${GATHER_ROWS}u;
  if (j >= p.cols || t0 >= p.rowsOut) { return; }
  let n = min(${GATHER_ROWS}u, p.rowsOut - t0);
  let m = p.inner;
  var acc: array<f32, ${GATHER_ROWS}>;
  for (var e = colPtr[j]; e < colPtr[j + 1u]; e++) {
    let at = t0 * m + colEntry[e] / p.r;
    let v = colValues[e];
    for (var k = 0u; k < ${GATHER_ROWS}u; k++) {
      if (k < n) { acc[k] += f32(x[at + k * m]) * v; }
    }
  }
  for (var k = 0u; k < n; k++) { out[(t0 + k) * p.cols + j] = ${outType}(acc[k]); }
}
`;
}

/** out[a, c] = sum_l P[l, a] y[l, c]   (y: rows x C, out: d x C) = P^T y, via P's columns. */
export function gatherRowsTWgsl(yType: GatherFloat, outType: GatherFloat): string {
  return /* wgsl */ `${f16Enable(yType, outType)}
${paramsStruct}
@group(0) @binding(0) var<storage, read> y: array<${yType}>;
@group(0) @binding(1) var<storage, read> colPtr: array<u32>;
@group(0) @binding(2) var<storage, read> colEntry: array<u32>;
@group(0) @binding(3) var<storage, read> colValues: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<${outType}>;
@group(0) @binding(5) var<uniform> p: Params;
// rowsOut = d, cols = C
@compute @workgroup_size(${SPARSE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let a = gid.y + p.rowOffset;
  if (c >= p.cols || a >= p.rowsOut) { return; }
  var acc = 0.0;
  for (var e = colPtr[a]; e < colPtr[a + 1u]; e++) {
    acc += colValues[e] * f32(y[(colEntry[e] / p.r) * p.cols + c]);
  }
  out[a * p.cols + c] = ${outType}(acc);
}
`;
}

/** out[l, c] = sum_k v[l,k] D[pos[l,k], c]   (D: d x C, out: rows x C) = P D, via P's rows. */
export const expandRowsWgsl = /* wgsl */ `
${paramsStruct}
@group(0) @binding(0) var<storage, read> dmat: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
// rowsOut = rows of P, cols = C
@compute @workgroup_size(${SPARSE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let l = gid.y + p.rowOffset;
  if (c >= p.cols || l >= p.rowsOut) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.r; k++) {
    acc += values[l * p.r + k] * dmat[positions[l * p.r + k] * p.cols + c];
  }
  out[l * p.cols + c] = acc;
}
`;

/**
 * out[i*r+k] (+)= alpha * sum_c U[i, c] V[pos[i,k], c]: the entries of alpha * U V^T at P's positions.
 * Flags (in `cols`): bit 0 accumulate, bit 1 U stored transposed ([d, rows]), bit 2 V stored transposed.
 */
export const sampledRowDotsWgsl = /* wgsl */ `
${paramsStruct}
@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
// rowsOut = rows of P (the launch covers rows * r entries), inner = d
@compute @workgroup_size(${SPARSE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let entry = gid.y * p.stride + gid.x;
  if (entry >= p.rowsOut * p.r) { return; }
  let i = entry / p.r;
  let a = positions[entry];
  let uT = (p.cols & 2u) != 0u;
  let vT = (p.cols & 4u) != 0u;
  // element c of U's row i and of V's row a, for either storage order
  let uBase = select(i * p.inner, i, uT);
  let uStep = select(1u, p.rowsOut, uT);
  let vBase = select(a * p.inner, a, vT);
  let vStep = select(1u, p.inner, vT);
  var acc = 0.0;
  for (var c = 0u; c < p.inner; c++) {
    acc += u[uBase + c * uStep] * v[vBase + c * vStep];
  }
  acc *= p.alpha;
  if ((p.cols & 1u) != 0u) { acc += out[entry]; }
  out[entry] = acc;
}
`;

/** colValues[e] = values[colEntry[e]]: refresh the column copy after the values changed. */
export const syncColumnValuesWgsl = /* wgsl */ `
${paramsStruct}
@group(0) @binding(0) var<storage, read> values: array<f32>;
@group(0) @binding(1) var<storage, read> colEntry: array<u32>;
@group(0) @binding(2) var<storage, read_write> colValues: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(${SPARSE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let e = gid.y * p.stride + gid.x;
  if (e >= p.rowsOut) { return; }
  colValues[e] = values[colEntry[e]];
}
`;

/** Counter-based uniform [0, 1) from (seed, index): a PCG-style hash, reproducible across runs. */
export const hashUniformWgsl = /* wgsl */ `
fn pcgHash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
fn uniform01(seed: u32, index: u32) -> f32 {
  return f32(pcgHash(pcgHash(index) ^ seed) >> 8u) * (1.0 / 16777216.0);
}
`;

/**
 * W[l, i] += alpha * sum_k v[i,k] F[l, pos[i,k]]  (W: n x m, F: n x d; P: m x d) = W + alpha F P^T.
 * f32 weights: plain add. f16 weights (storage as u32 words holding two halves): w + delta is rounded
 * stochastically from the exact sum (cast.wgsl's stochasticAddF16, so a delta below one f32 ulp of w keeps
 * its probability) and saturated at +-65504, each invocation owning one word so no two write the same word.
 */
export function addTimesProjTWgsl(weights: 'f32' | 'f16'): string {
  const body =
    weights === 'f32'
      ? /* wgsl */ `
  let idx = gid.x + gid.y * p.stride;
  if (idx >= p.rowsOut * p.cols) { return; }
  w[idx] = w[idx] + p.alpha * delta(idx / p.cols, idx % p.cols);`
      : /* wgsl */ `
  let word = gid.x + gid.y * p.stride;
  let total = p.rowsOut * p.cols;
  let first = word * 2u;
  if (first >= total) { return; }
  var packed = w[word];
  for (var h = 0u; h < 2u; h++) {
    let idx = first + h;
    if (idx >= total) { break; }
    let shift = h * 16u;
    let old = f16BitsToF32((packed >> shift) & 0xffffu);
    let sum = stochasticAddF16(old, p.alpha * delta(idx / p.cols, idx % p.cols), uniform01(p.seed, idx));
    // saturate: an update never turns a weight into inf (NaN stays NaN)
    let mag = bitcast<u32>(sum) & 0x7fffffffu;
    var bitsOut = f32ToF16Bits(sum);
    if (mag > 0x477fe000u && mag <= 0x7f800000u) { bitsOut = ((bitcast<u32>(sum) >> 16u) & 0x8000u) | 0x7bffu; }
    packed = (packed & ~(0xffffu << shift)) | (bitsOut << shift);
  }
  w[word] = packed;`;
  return /* wgsl */ `
${paramsStruct}
${hashUniformWgsl}
${F16_BITS_WGSL}
${STOCHASTIC_ADD_F16_WGSL}
@group(0) @binding(0) var<storage, read_write> w: array<${weights === 'f32' ? 'f32' : 'u32'}>;
@group(0) @binding(1) var<storage, read> f: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
// rowsOut = n, cols = m, inner = d
fn delta(l: u32, i: u32) -> f32 {
  var acc = 0.0;
  let fRow = l * p.inner;
  for (var k = 0u; k < p.r; k++) {
    acc += values[i * p.r + k] * f[fRow + positions[i * p.r + k]];
  }
  return acc;
}
@compute @workgroup_size(${SPARSE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {${body}
}
`;
}
