// RMSNorm (LLaMA) and LayerNorm (GPT-2) over rows of length C: forward, the input gradient, and the
// weight/bias gradients reduced over rows in two fixed-order stages (per-chunk partial sums, then a sum
// over chunks), so results are bitwise reproducible and never depend on float atomics.
// x, dx and the statistics are f32; y and dy may be f16-stored (mixed precision); weights and biases are
// f32 or f16-stored (unpacked to f32). Math is f32 throughout.
import { F16_BITS_WGSL } from './cast.wgsl.js';
import { ROW_WG, loadStored, storedArray, type StoredFloat } from './rows.js';

export type NormKind = 'rms' | 'layer';

/** Rows summed by one workgroup of the weight-gradient first stage, at least (see normChunking). */
export const NORM_MIN_ROWS_PER_CHUNK = 32;
/** At most this many partial sums per column, so the workspace stays C x 256 floats per output. */
export const NORM_MAX_CHUNKS = 256;

const reduceSumFn = /* wgsl */ `
var<workgroup> red: array<f32, ${ROW_WG}>;
// Tree sum over the workgroup in a fixed order (deterministic); every invocation gets the total.
fn reduceSum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}`;

const reduceSum2Fn = /* wgsl */ `
var<workgroup> red2: array<vec2<f32>, ${ROW_WG}>;
fn reduceSum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
  red2[lid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red2[lid] += red2[lid + s]; }
    workgroupBarrier();
  }
  let total = red2[0];
  workgroupBarrier();
  return total;
}`;

/**
 * Forward: y = (x - mean) * rstd * w (+ b); saves rstd (and mean for LayerNorm) per row. An f16 y is
 * written a u32 word (two halves) at a time, so each word has one writer: the row writes the words
 * whose halves both lie in it (and the tensor's last, half-padding word); with an odd row length the
 * word shared by two rows is left to normForwardEdgesWgsl, which runs after and reads the saved stats.
 */
export function normForwardWgsl(
  kind: NormKind,
  weightDtype: StoredFloat,
  yDtype: StoredFloat = 'f32',
): string {
  if (yDtype === 'f16') return normForwardF16Wgsl(kind, weightDtype);
  const layer = kind === 'layer';
  const w = (i: string) => loadStored('w', weightDtype, i);
  const b = (i: string) => loadStored('b', weightDtype, i);
  return /* wgsl */ `
${normForwardHeaderWgsl(layer, weightDtype, 'f32')}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${rowStatisticsWgsl(layer)}
  for (var c = lid; c < p.cols; c += ${ROW_WG}u) {
    y[base + c] = (x[base + c] - mean) * rstd * ${w('c')}${layer ? ` + ${b('c')}` : ''};
  }
  if (lid == 0u) {
    rstdOut[row] = rstd;
    ${layer ? 'meanOut[row] = mean;' : ''}
  }
}
`;
}

/** The forward's params and bindings (y as f32, or as u32 words of f16 pairs) and the row reduction. */
function normForwardHeaderWgsl(layer: boolean, weightDtype: StoredFloat, yElement: 'f32' | 'u32'): string {
  let binding = 0;
  const bind = (decl: string) => `@group(0) @binding(${binding++}) ${decl};`;
  return /* wgsl */ `struct Params { rows: u32, cols: u32, rowsX: u32, eps: f32 }
${bind('var<storage, read> x: array<f32>')}
${bind(`var<storage, read> w: ${storedArray(weightDtype)}`)}
${layer ? bind(`var<storage, read> b: ${storedArray(weightDtype)}`) : ''}
${bind(`var<storage, read_write> y: array<${yElement}>`)}
${layer ? bind('var<storage, read_write> meanOut: array<f32>') : ''}
${bind('var<storage, read_write> rstdOut: array<f32>')}
${bind('var<uniform> p: Params')}
${reduceSumFn}`;
}

/** One workgroup's row of x: row, base, n, and its mean (0 for RMSNorm) and rstd, in f32. */
function rowStatisticsWgsl(layer: boolean): string {
  return /* wgsl */ `let row = wid.y * p.rowsX + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let n = f32(p.cols);
  ${
    layer
      ? `// Two passes (mean, then squared deviations): as accurate as torch's, the row stays in cache.
  var s = 0.0;
  for (var c = lid; c < p.cols; c += ${ROW_WG}u) { s += x[base + c]; }
  let mean = reduceSum(s, lid) / n;`
      : 'let mean = 0.0;'
  }
  var q = 0.0;
  for (var c = lid; c < p.cols; c += ${ROW_WG}u) {
    let d = x[base + c] - mean;
    q += d * d;
  }
  let rstd = inverseSqrt(reduceSum(q, lid) / n + p.eps);`;
}

/** y(c) of one row from its statistics, shared by the f16 forward and its edge fix-up (same expression). */
function normValueFn(kind: NormKind, weightDtype: StoredFloat): string {
  const layer = kind === 'layer';
  return /* wgsl */ `
fn yValue(base: u32, c: u32, mean: f32, rstd: f32) -> f32 {
  return (x[base + c] - mean) * rstd * ${loadStored('w', weightDtype, 'c')}${layer ? ` + ${loadStored('b', weightDtype, 'c')}` : ''};
}`;
}

function normForwardF16Wgsl(kind: NormKind, weightDtype: StoredFloat): string {
  const layer = kind === 'layer';
  return /* wgsl */ `
${normForwardHeaderWgsl(layer, weightDtype, 'u32')}
${F16_BITS_WGSL}
${normValueFn(kind, weightDtype)}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${rowStatisticsWgsl(layer)}
  let end = base + p.cols;
  // words with both halves in this row; plus the tensor's last word when its high half is padding
  let lastRow = row + 1u == p.rows;
  let words = (end >> 1u) + select(0u, 1u, lastRow && (end & 1u) == 1u);
  for (var wi = ((base + 1u) >> 1u) + lid; wi < words; wi += ${ROW_WG}u) {
    let e0 = 2u * wi;
    let has1 = e0 + 1u < end;
    var hi = y[wi] >> 16u; // padding past the tensor's end: kept
    if (has1) { hi = f32ToF16Bits(yValue(base, e0 + 1u - base, mean, rstd)); }
    y[wi] = f32ToF16Bits(yValue(base, e0 - base, mean, rstd)) | (hi << 16u);
  }
  if (lid == 0u) {
    rstdOut[row] = rstd;
    ${layer ? 'meanOut[row] = mean;' : ''}
  }
}
`;
}

/**
 * f16 forward with an odd row length, second pass: the word holding the last element of row r - 1 and
 * the first of row r (every r >= 1 whose start r * cols is odd), from the saved mean and rstd.
 */
export function normForwardEdgesWgsl(kind: NormKind, weightDtype: StoredFloat): string {
  const layer = kind === 'layer';
  let binding = 0;
  const bind = (decl: string) => `@group(0) @binding(${binding++}) ${decl};`;
  return /* wgsl */ `
struct Params { rows: u32, cols: u32, rowStride: u32, _pad: u32 }
${bind('var<storage, read> x: array<f32>')}
${bind(`var<storage, read> w: ${storedArray(weightDtype)}`)}
${layer ? bind(`var<storage, read> b: ${storedArray(weightDtype)}`) : ''}
${layer ? bind('var<storage, read> meanIn: array<f32>') : ''}
${bind('var<storage, read> rstdIn: array<f32>')}
${bind('var<storage, read_write> y: array<u32>')}
${bind('var<uniform> p: Params')}
${F16_BITS_WGSL}
${normValueFn(kind, weightDtype)}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.y * p.rowStride + gid.x + 1u;
  if (r >= p.rows) { return; }
  let start = r * p.cols;
  if ((start & 1u) == 0u) { return; }
  let prev = start - p.cols;
  let lo = yValue(prev, p.cols - 1u, ${layer ? 'meanIn[r - 1u]' : '0.0'}, rstdIn[r - 1u]);
  let hi = yValue(start, 0u, ${layer ? 'meanIn[r]' : '0.0'}, rstdIn[r]);
  y[start >> 1u] = f32ToF16Bits(lo) | (f32ToF16Bits(hi) << 16u);
}
`;
}

/**
 * Input gradient. With xhat = (x - mean) * rstd and g = dy * w:
 *   RMSNorm   dx = rstd * (g - xhat * mean(g * xhat))
 *   LayerNorm dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
 * `accumulate` (a param) adds into dx instead of overwriting (the residual stream's gradient).
 */
export function normBackwardInputWgsl(
  kind: NormKind,
  weightDtype: StoredFloat,
  dyDtype: StoredFloat = 'f32',
): string {
  const layer = kind === 'layer';
  const w = (i: string) => loadStored('w', weightDtype, i);
  const dy = (i: string) => loadStored('dy', dyDtype, i);
  let binding = 0;
  const bind = (decl: string) => `@group(0) @binding(${binding++}) ${decl};`;
  return /* wgsl */ `
struct Params { rows: u32, cols: u32, rowsX: u32, accumulate: u32 }
${bind(`var<storage, read> dy: ${storedArray(dyDtype)}`)}
${bind('var<storage, read> x: array<f32>')}
${bind(`var<storage, read> w: ${storedArray(weightDtype)}`)}
${layer ? bind('var<storage, read> meanIn: array<f32>') : ''}
${bind('var<storage, read> rstdIn: array<f32>')}
${bind('var<storage, read_write> dx: array<f32>')}
${bind('var<uniform> p: Params')}
${reduceSum2Fn}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * p.rowsX + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let n = f32(p.cols);
  let mean = ${layer ? 'meanIn[row]' : '0.0'};
  let rstd = rstdIn[row];
  // (sum g, sum g * xhat) in one pass over the row.
  var acc = vec2<f32>(0.0);
  for (var c = lid; c < p.cols; c += ${ROW_WG}u) {
    let g = ${dy('base + c')} * ${w('c')};
    acc += vec2<f32>(g, g * (x[base + c] - mean) * rstd);
  }
  let sums = reduceSum2(acc, lid) / n;
  let meanG = ${layer ? 'sums.x' : '0.0'};
  for (var c = lid; c < p.cols; c += ${ROW_WG}u) {
    let g = ${dy('base + c')} * ${w('c')};
    let xhat = (x[base + c] - mean) * rstd;
    let grad = rstd * (g - meanG - xhat * sums.y);
    // select, not a branch on a read of dx: a poisoned (NaN) dx must not leak when overwriting.
    dx[base + c] = select(0.0, dx[base + c], p.accumulate != 0u) + grad;
  }
}
`;
}

/**
 * Weight (and bias) gradient, stage 1: workgroup (column tile, chunk) sums dy * xhat (and dy) over the
 * chunk's rows in row order into partial[chunk][c] (bias partials follow at partial[chunks + chunk][c]).
 */
export function normBackwardParamsPartialWgsl(kind: NormKind, dyDtype: StoredFloat = 'f32'): string {
  const layer = kind === 'layer';
  let binding = 0;
  const bind = (decl: string) => `@group(0) @binding(${binding++}) ${decl};`;
  return /* wgsl */ `
struct Params { rows: u32, cols: u32, rowsPerChunk: u32, chunks: u32 }
${bind(`var<storage, read> dy: ${storedArray(dyDtype)}`)}
${bind('var<storage, read> x: array<f32>')}
${layer ? bind('var<storage, read> meanIn: array<f32>') : ''}
${bind('var<storage, read> rstdIn: array<f32>')}
${bind('var<storage, read_write> partial: array<f32>')}
${bind('var<uniform> p: Params')}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x * ${ROW_WG}u + lid;
  let chunk = wid.y;
  if (c >= p.cols || chunk >= p.chunks) { return; }
  let r0 = chunk * p.rowsPerChunk;
  let r1 = min(p.rows, r0 + p.rowsPerChunk);
  var dw = 0.0;
  ${layer ? 'var db = 0.0;' : ''}
  for (var r = r0; r < r1; r++) {
    let g = ${loadStored('dy', dyDtype, 'r * p.cols + c')};
    dw += g * (x[r * p.cols + c] - ${layer ? 'meanIn[r]' : '0.0'}) * rstdIn[r];
    ${layer ? 'db += g;' : ''}
  }
  partial[chunk * p.cols + c] = dw;
  ${layer ? 'partial[(p.chunks + chunk) * p.cols + c] = db;' : ''}
}
`;
}

/** Stage 2: dw[c] (+)= sum over chunks of partial[chunk][c], chunks in order; same for db. */
export function normBackwardParamsFinalWgsl(kind: NormKind): string {
  const layer = kind === 'layer';
  let binding = 0;
  const bind = (decl: string) => `@group(0) @binding(${binding++}) ${decl};`;
  return /* wgsl */ `
struct Params { cols: u32, chunks: u32, accumulate: u32, _pad: u32 }
${bind('var<storage, read> partial: array<f32>')}
${bind('var<storage, read_write> dw: array<f32>')}
${layer ? bind('var<storage, read_write> db: array<f32>') : ''}
${bind('var<uniform> p: Params')}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.cols) { return; }
  var sw = 0.0;
  ${layer ? 'var sb = 0.0;' : ''}
  for (var k = 0u; k < p.chunks; k++) {
    sw += partial[k * p.cols + c];
    ${layer ? 'sb += partial[(p.chunks + k) * p.cols + c];' : ''}
  }
  let keep = p.accumulate != 0u;
  dw[c] = select(0.0, dw[c], keep) + sw;
  ${layer ? 'db[c] = select(0.0, db[c], keep) + sb;' : ''}
}
`;
}
