// Host side of the (d, r)-sparse projector kernels, each next to its float64 reference.
// Notation: a projector P is rows x d with r non-zeros per row. The trainer's uses:
//   compress  S = (dY Pout)^T (X Pin)         gatherColumns twice, then a dense A^T.B matmul
//   apply     W += Pout D Pin^T               expandRows (F = Pout D), then addTimesProjT (W += F Pin^T)
//   learning  sampledRowDots (gradient entries at P's positions), gatherRowsT (P^T y)
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { grid1d } from './grid.js';
import {
  GATHER_ROWS,
  SPARSE_WG,
  type GatherFloat,
  addTimesProjTWgsl,
  expandRowsWgsl,
  gatherColumnsWgsl,
  gatherRowsTWgsl,
  sampledRowDotsWgsl,
  syncColumnValuesWgsl,
} from './sparse-projection.wgsl.js';

/** A sparse projector's GPU tensors. */
export interface SparseProjectorTensors {
  rows: number;
  d: number;
  r: number;
  /** u32 [rows * r]: column of the k-th non-zero of row i at i*r+k (distinct within a row). */
  positions: Tensor;
  /** f32 [rows * r]: the values, in the same order. */
  values: Tensor;
  /** u32 [d + 1]: CSC column starts into colEntry. */
  colPtr: Tensor;
  /** u32 [rows * r]: row-form entry index (i*r+k) of each non-zero, grouped by column, rows ascending. */
  colEntry: Tensor;
  /** f32 [rows * r]: values[colEntry[e]] (refreshed by syncColumnValues after values change). */
  colValues: Tensor;
}

/** Host-side projector (row form) used by the references. */
export interface SparseProjectorHost {
  rows: number;
  d: number;
  r: number;
  positions: Uint32Array;
  values: Float32Array | Float64Array;
}

/** CSC index of a row-form projector: counting sort by column, stable so rows stay ascending. */
export function buildColumnIndex(
  positions: Uint32Array,
  rows: number,
  r: number,
  d: number,
): { colPtr: Uint32Array; colEntry: Uint32Array } {
  if (positions.length !== rows * r)
    throw new Error(`positions has ${positions.length} entries, want rows*r = ${rows * r}`);
  const colPtr = new Uint32Array(d + 1);
  for (let e = 0; e < positions.length; e++) {
    const c = positions[e]!;
    if (c >= d) throw new RangeError(`projector position ${c} at entry ${e} is not < d = ${d}`);
    colPtr[c + 1]!++;
  }
  for (let c = 0; c < d; c++) colPtr[c + 1]! += colPtr[c]!;
  const fill = colPtr.slice(0, d);
  const colEntry = new Uint32Array(positions.length);
  for (let e = 0; e < positions.length; e++) colEntry[fill[positions[e]!]!++] = e;
  return { colPtr, colEntry };
}

/** Upload a host projector (values f32) with its column index. */
export function uploadSparseProjector(
  gpu: GpuRuntime,
  label: string,
  p: SparseProjectorHost,
): SparseProjectorTensors {
  const { colPtr, colEntry } = buildColumnIndex(p.positions, p.rows, p.r, p.d);
  const colValues = new Float32Array(colEntry.length);
  for (let e = 0; e < colEntry.length; e++) colValues[e] = p.values[colEntry[e]!]!;
  const n = p.rows * p.r;
  return {
    rows: p.rows,
    d: p.d,
    r: p.r,
    positions: gpu.upload(`${label}.positions`, 'u32', [n], p.positions, 'projectors'),
    values: gpu.upload(`${label}.values`, 'f32', [n], p.values, 'projectors'),
    colPtr: gpu.upload(`${label}.colPtr`, 'u32', [p.d + 1], colPtr, 'projectors'),
    colEntry: gpu.upload(`${label}.colEntry`, 'u32', [n], colEntry, 'projectors'),
    colValues: gpu.upload(`${label}.colValues`, 'f32', [n], colValues, 'projectors'),
  };
}

export function releaseSparseProjector(p: SparseProjectorTensors): void {
  for (const t of [p.positions, p.values, p.colPtr, p.colEntry, p.colValues]) t.release();
}

function check(cond: boolean, msg: () => string): void {
  if (!cond) throw new Error(msg());
}

function params(rowsOut: number, cols: number, inner: number, r: number): Params {
  return new Params().u32(rowsOut).u32(cols).u32(inner).u32(r);
}

/** Dispatch a (cols x gridRows) 2D launch in chunks of <= 65535 grid rows (the params carry the sizes). */
function dispatch2d(
  gpu: GpuRuntime,
  label: string,
  pipeline: GPUComputePipeline,
  bindings: Tensor[],
  base: () => Params,
  gridRows: number,
  cols: number,
  alpha = 1,
  seed = 0,
): void {
  const maxRows = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  const gx = Math.ceil(cols / SPARSE_WG);
  for (let row0 = 0; row0 < gridRows; row0 += maxRows) {
    const rows = Math.min(maxRows, gridRows - row0);
    gpu.dispatch({
      label,
      pipeline,
      bindings,
      params: base().u32(row0).f32(alpha).u32(seed).u32(0),
      workgroups: [gx, rows],
    });
  }
}

function dispatch1d(
  gpu: GpuRuntime,
  label: string,
  pipeline: GPUComputePipeline,
  bindings: Tensor[],
  base: Params,
  invocations: number,
  alpha = 1,
  seed = 0,
): void {
  const g = grid1d(gpu, invocations, SPARSE_WG);
  gpu.dispatch({
    label,
    pipeline,
    bindings,
    params: base.u32(0).f32(alpha).u32(seed).u32(g.rowStride),
    workgroups: g.workgroups,
  });
}

// ---- out = x P ---------------------------------------------------------------------------------

/** f32 or f16 (f16 needs the device's shader-f16); errors name the kernel and the tensor. */
function gatherFloat(gpu: GpuRuntime, what: string, t: Tensor): GatherFloat {
  check(t.dtype === 'f32' || t.dtype === 'f16', () => `${what} ${t} must be f32 or f16`);
  check(
    t.dtype !== 'f16' || gpu.has('shader-f16'),
    () => `${what} ${t} is f16 but the device lacks 'shader-f16'`,
  );
  return t.dtype as GatherFloat;
}

/** out [T, d] = x [T, rows] . P; x and out f32 or f16 (f32 sums), e.g. lsp's A = X R on f16 activations. */
export function gatherColumns(gpu: GpuRuntime, x: Tensor, p: SparseProjectorTensors, out: Tensor): void {
  const [T, rows] = x.shape as [number, number];
  check(x.shape.length === 2 && rows === p.rows, () => `gatherColumns: x ${x} must be [T, ${p.rows}]`);
  check(out.numel === T * p.d, () => `gatherColumns: out ${out} must be [${T}, ${p.d}]`);
  const xType = gatherFloat(gpu, 'gatherColumns: x', x);
  const outType = gatherFloat(gpu, 'gatherColumns: out', out);
  const pipeline = gpu.pipeline(`sparse.gatherColumns.${xType}.${outType}`, () =>
    gatherColumnsWgsl(xType, outType),
  );
  // grid rows are groups of GATHER_ROWS tokens; the kernel reads the real token count from the params
  dispatch2d(
    gpu,
    'gatherColumns',
    pipeline,
    [x, p.colPtr, p.colEntry, p.colValues, out],
    () => params(T, p.d, rows, p.r),
    Math.ceil(T / GATHER_ROWS),
    p.d,
  );
}

export function gatherColumnsReference(
  x: ArrayLike<number>,
  T: number,
  p: SparseProjectorHost,
): Float64Array {
  const out = new Float64Array(T * p.d);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < p.rows; i++) {
      const xv = x[t * p.rows + i]!;
      for (let k = 0; k < p.r; k++) out[t * p.d + p.positions[i * p.r + k]!]! += xv * p.values[i * p.r + k]!;
    }
  }
  return out;
}

// ---- out = P^T y -------------------------------------------------------------------------------

/** out [d, C] = P^T . y [rows, C]; y and out f32 or f16 (f32 sums). */
export function gatherRowsT(gpu: GpuRuntime, y: Tensor, p: SparseProjectorTensors, out: Tensor): void {
  const [rows, C] = y.shape as [number, number];
  check(y.shape.length === 2 && rows === p.rows, () => `gatherRowsT: y ${y} must be [${p.rows}, C]`);
  check(out.numel === p.d * C, () => `gatherRowsT: out ${out} must be [${p.d}, ${C}]`);
  const yType = gatherFloat(gpu, 'gatherRowsT: y', y);
  const outType = gatherFloat(gpu, 'gatherRowsT: out', out);
  const pipeline = gpu.pipeline(`sparse.gatherRowsT.${yType}.${outType}`, () =>
    gatherRowsTWgsl(yType, outType),
  );
  dispatch2d(
    gpu,
    'gatherRowsT',
    pipeline,
    [y, p.colPtr, p.colEntry, p.colValues, out],
    () => params(p.d, C, rows, p.r),
    p.d,
    C,
  );
}

export function gatherRowsTReference(y: ArrayLike<number>, C: number, p: SparseProjectorHost): Float64Array {
  const out = new Float64Array(p.d * C);
  for (let l = 0; l < p.rows; l++) {
    for (let k = 0; k < p.r; k++) {
      const a = p.positions[l * p.r + k]!;
      const v = p.values[l * p.r + k]!;
      for (let c = 0; c < C; c++) out[a * C + c]! += v * y[l * C + c]!;
    }
  }
  return out;
}

// ---- out = P D ---------------------------------------------------------------------------------

/** out [rows, C] = P . D [d, C]. */
export function expandRows(gpu: GpuRuntime, dmat: Tensor, p: SparseProjectorTensors, out: Tensor): void {
  const [d, C] = dmat.shape as [number, number];
  check(
    dmat.shape.length === 2 && d === p.d && dmat.dtype === 'f32',
    () => `expandRows: D ${dmat} must be f32 [${p.d}, C]`,
  );
  check(
    out.dtype === 'f32' && out.numel === p.rows * C,
    () => `expandRows: out ${out} must be f32 [${p.rows}, ${C}]`,
  );
  const pipeline = gpu.pipeline('sparse.expandRows', () => expandRowsWgsl);
  dispatch2d(
    gpu,
    'expandRows',
    pipeline,
    [dmat, p.positions, p.values, out],
    () => params(p.rows, C, d, p.r),
    p.rows,
    C,
  );
}

export function expandRowsReference(
  dmat: ArrayLike<number>,
  C: number,
  p: SparseProjectorHost,
): Float64Array {
  const out = new Float64Array(p.rows * C);
  for (let l = 0; l < p.rows; l++) {
    for (let k = 0; k < p.r; k++) {
      const a = p.positions[l * p.r + k]!;
      const v = p.values[l * p.r + k]!;
      for (let c = 0; c < C; c++) out[l * C + c]! += v * dmat[a * C + c]!;
    }
  }
  return out;
}

// ---- W += alpha F P^T --------------------------------------------------------------------------

/**
 * W [n, m] += alpha * F [n, d] . P^T  (P: m x d). f16 weights are rounded stochastically with a
 * counter-based RNG keyed by `seed` and the element index (unbiased; reproducible for a given seed).
 */
export function addTimesProjT(
  gpu: GpuRuntime,
  w: Tensor,
  f: Tensor,
  p: SparseProjectorTensors,
  alpha: number,
  seed = 0,
): void {
  const [n, m] = w.shape as [number, number];
  check(
    w.shape.length === 2 && m === p.rows && (w.dtype === 'f32' || w.dtype === 'f16'),
    () => `addTimesProjT: W ${w} must be f32/f16 [n, ${p.rows}]`,
  );
  check(f.dtype === 'f32' && f.numel === n * p.d, () => `addTimesProjT: F ${f} must be f32 [${n}, ${p.d}]`);
  const pipeline = gpu.pipeline(`sparse.addTimesProjT.${w.dtype}`, () =>
    addTimesProjTWgsl(w.dtype as 'f32' | 'f16'),
  );
  const invocations = w.dtype === 'f32' ? n * m : Math.ceil((n * m) / 2);
  dispatch1d(
    gpu,
    'addTimesProjT',
    pipeline,
    [w, f, p.positions, p.values],
    params(n, m, p.d, p.r),
    invocations,
    alpha,
    seed >>> 0,
  );
}

/** Exact (float64) W + alpha F P^T; the f16 path's expectation. */
export function addTimesProjTReference(
  w: ArrayLike<number>,
  n: number,
  f: ArrayLike<number>,
  p: SparseProjectorHost,
  alpha: number,
): Float64Array {
  const m = p.rows;
  const out = Float64Array.from(w);
  for (let l = 0; l < n; l++) {
    for (let i = 0; i < m; i++) {
      let acc = 0;
      for (let k = 0; k < p.r; k++) acc += p.values[i * p.r + k]! * f[l * p.d + p.positions[i * p.r + k]!]!;
      out[l * m + i]! += alpha * acc;
    }
  }
  return out;
}

// ---- entries of U V^T at P's positions ---------------------------------------------------------

/**
 * out [rows * r] (+)= alpha * (U . V^T) at (i, positions[i*r+k]), U: [rows, d] (or stored [d, rows] with
 * uTransposed), V: [d, d] (or its transpose with vTransposed).
 */
export function sampledRowDots(
  gpu: GpuRuntime,
  u: Tensor,
  v: Tensor,
  p: SparseProjectorTensors,
  out: Tensor,
  options: { alpha?: number; accumulate?: boolean; uTransposed?: boolean; vTransposed?: boolean } = {},
): void {
  check(
    u.dtype === 'f32' && u.numel === p.rows * p.d,
    () => `sampledRowDots: U ${u} must be f32 with ${p.rows} x ${p.d} elements`,
  );
  check(
    v.dtype === 'f32' && v.numel === p.d * p.d,
    () => `sampledRowDots: V ${v} must be f32 [${p.d}, ${p.d}]`,
  );
  check(
    out.dtype === 'f32' && out.numel === p.rows * p.r,
    () => `sampledRowDots: out ${out} must be f32 [${p.rows * p.r}]`,
  );
  const pipeline = gpu.pipeline('sparse.sampledRowDots', () => sampledRowDotsWgsl);
  const { alpha = 1, accumulate = false, uTransposed = false, vTransposed = false } = options;
  const flags = (accumulate ? 1 : 0) | (uTransposed ? 2 : 0) | (vTransposed ? 4 : 0);
  dispatch1d(
    gpu,
    'sampledRowDots',
    pipeline,
    [u, v, p.positions, out],
    params(p.rows, flags, p.d, p.r),
    p.rows * p.r,
    alpha,
  );
}

/** Reference of sampledRowDots with U [rows, d] and V [d, d] in row-major order (transpose on the host). */
export function sampledRowDotsReference(
  u: ArrayLike<number>,
  v: ArrayLike<number>,
  p: SparseProjectorHost,
): Float64Array {
  const out = new Float64Array(p.rows * p.r);
  for (let i = 0; i < p.rows; i++) {
    for (let k = 0; k < p.r; k++) {
      const a = p.positions[i * p.r + k]!;
      let acc = 0;
      for (let c = 0; c < p.d; c++) acc += u[i * p.d + c]! * v[a * p.d + c]!;
      out[i * p.r + k] = acc;
    }
  }
  return out;
}

/** Refresh the column-form values after the row-form values changed (e.g. after a learning step). */
export function syncColumnValues(gpu: GpuRuntime, p: SparseProjectorTensors): void {
  const pipeline = gpu.pipeline('sparse.syncColumnValues', () => syncColumnValuesWgsl);
  const n = p.rows * p.r;
  dispatch1d(gpu, 'syncColumnValues', pipeline, [p.values, p.colEntry, p.colValues], params(n, 0, 0, p.r), n);
}
