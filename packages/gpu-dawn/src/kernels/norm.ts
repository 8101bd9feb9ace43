// RMSNorm (LLaMA: y = x / sqrt(mean(x^2) + eps) * w) and LayerNorm (GPT-2: y = (x - mean) / sqrt(var + eps)
// * w + b, biased variance) over the last dimension C of an f32 tensor, any number of rows; forward,
// backward, and float64 references. Weights/biases are f32 or f16-stored; y and dy may be f16 (mixed
// precision: the f32 residual stream in, f16 matmul operands out). The forward saves per-row rstd (and
// mean) for the backward; weight gradients are reduced over rows deterministically.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { grid1d } from './grid.js';
import {
  NORM_MAX_CHUNKS,
  NORM_MIN_ROWS_PER_CHUNK,
  normBackwardInputWgsl,
  normBackwardParamsFinalWgsl,
  normBackwardParamsPartialWgsl,
  normForwardEdgesWgsl,
  normForwardWgsl,
  type NormKind,
} from './norm.wgsl.js';
import { ROW_WG, checkDisjoint, checkTensor, rowGrid, type StoredFloat } from './rows.js';

export type { NormKind };

export interface RmsNormForwardArgs {
  /** f32 [..., C]. */
  x: Tensor;
  /** f32 or f16 [C]. */
  weight: Tensor;
  /** f32 or f16, same shape as x (written; f16 rounds each f32 result to nearest, overflow to inf). */
  y: Tensor;
  /** f32 [rows] (written): 1 / sqrt(mean(x^2) + eps) per row, for the backward. */
  rstd: Tensor;
  eps: number;
}

export interface LayerNormForwardArgs extends RmsNormForwardArgs {
  /** Same dtype and shape as weight. */
  bias: Tensor;
  /** f32 [rows] (written): the row mean, for the backward. */
  mean: Tensor;
}

export interface RmsNormBackwardArgs {
  /** f32 or f16, the gradient of y (same shape as x). */
  dy: Tensor;
  x: Tensor;
  weight: Tensor;
  /** As saved by the forward. */
  rstd: Tensor;
  /** f32, same shape as x (written, or added to with accumulateDx). */
  dx: Tensor;
  /** f32 [C] (written, or added to with accumulateParams); omit for a frozen weight. */
  dweight?: Tensor;
  /** dx += gradient instead of dx = gradient (e.g. into the residual stream's gradient). */
  accumulateDx?: boolean;
  /** dweight (and dbias) += gradient (gradient accumulation over micro-batches). */
  accumulateParams?: boolean;
}

export interface LayerNormBackwardArgs extends RmsNormBackwardArgs {
  mean: Tensor;
  /** f32 [C]; omit for a frozen bias. */
  dbias?: Tensor;
}

interface NormShape {
  rows: number;
  cols: number;
  weightDtype: StoredFloat;
}

function normShape(op: string, x: Tensor, weight: Tensor): NormShape {
  checkTensor(op, 'x', x, ['f32']);
  if (x.shape.length < 1) throw new Error(`${op}: x must have at least one dimension, got ${x}`);
  const cols = x.shape[x.shape.length - 1]!;
  if (cols < 1) throw new Error(`${op}: rows of x must not be empty, got ${x}`);
  checkTensor(op, 'weight', weight, ['f32', 'f16'], [cols]);
  return { rows: x.numel / cols, cols, weightDtype: weight.dtype as StoredFloat };
}

function checkSameShape(
  op: string,
  name: string,
  t: Tensor,
  like: Tensor,
  dtypes: readonly StoredFloat[] = ['f32'],
): void {
  checkTensor(op, name, t, dtypes, like.shape);
}

/** Chunking of the rows for the weight gradient: a function of the row count only (so deterministic). */
export function normChunking(rows: number): { chunks: number; rowsPerChunk: number } {
  const chunks = Math.max(1, Math.min(NORM_MAX_CHUNKS, Math.ceil(rows / NORM_MIN_ROWS_PER_CHUNK)));
  return { chunks, rowsPerChunk: Math.max(1, Math.ceil(rows / chunks)) };
}

function normForward(
  gpu: GpuRuntime,
  kind: NormKind,
  op: string,
  a: RmsNormForwardArgs & { bias?: Tensor; mean?: Tensor },
): void {
  const s = normShape(op, a.x, a.weight);
  checkSameShape(op, 'y', a.y, a.x, ['f32', 'f16']);
  checkTensor(op, 'rstd', a.rstd, ['f32'], [s.rows]);
  if (kind === 'layer') {
    checkTensor(op, 'bias', a.bias!, [a.weight.dtype], a.weight.shape);
    checkTensor(op, 'mean', a.mean!, ['f32'], [s.rows]);
  }
  if (!(a.eps >= 0)) throw new Error(`${op}: eps must be >= 0, got ${a.eps}`);
  checkDisjoint(op, { x: a.x, y: a.y, rstd: a.rstd, mean: a.mean });
  const g = rowGrid(gpu, s.rows);
  const bindings =
    kind === 'layer' ? [a.x, a.weight, a.bias!, a.y, a.mean!, a.rstd] : [a.x, a.weight, a.y, a.rstd];
  const yDtype = a.y.dtype as StoredFloat;
  gpu.dispatch({
    label: op,
    pipeline: gpu.pipeline(`norm.forward.${kind}.${s.weightDtype}${yDtype === 'f16' ? '.y16' : ''}`, () =>
      normForwardWgsl(kind, s.weightDtype, yDtype),
    ),
    bindings,
    params: new Params().u32(s.rows).u32(s.cols).u32(g.rowsX).f32(a.eps),
    workgroups: g.workgroups,
  });
  // f16 y with an odd row length: the words two rows share are written from the saved statistics.
  if (yDtype === 'f16' && s.cols % 2 === 1 && s.rows > 1) {
    const eg = grid1d(gpu, s.rows - 1, ROW_WG);
    const params = kind === 'layer' ? [a.x, a.weight, a.bias!, a.mean!, a.rstd] : [a.x, a.weight, a.rstd];
    gpu.dispatch({
      label: `${op}.edges`,
      pipeline: gpu.pipeline(`norm.forward.edges.${kind}.${s.weightDtype}`, () =>
        normForwardEdgesWgsl(kind, s.weightDtype),
      ),
      bindings: [...params, a.y],
      params: new Params().u32(s.rows).u32(s.cols).u32(eg.rowStride).u32(0),
      workgroups: eg.workgroups,
    });
  }
}

function normBackward(
  gpu: GpuRuntime,
  kind: NormKind,
  op: string,
  a: RmsNormBackwardArgs & { mean?: Tensor; dbias?: Tensor },
): void {
  const s = normShape(op, a.x, a.weight);
  checkSameShape(op, 'dy', a.dy, a.x, ['f32', 'f16']);
  checkSameShape(op, 'dx', a.dx, a.x);
  checkTensor(op, 'rstd', a.rstd, ['f32'], [s.rows]);
  if (kind === 'layer') checkTensor(op, 'mean', a.mean!, ['f32'], [s.rows]);
  if (a.dweight) checkTensor(op, 'dweight', a.dweight, ['f32'], [s.cols]);
  if (a.dbias) checkTensor(op, 'dbias', a.dbias, ['f32'], [s.cols]);
  checkDisjoint(op, { dy: a.dy, x: a.x, dx: a.dx, dweight: a.dweight, dbias: a.dbias });
  const layer = kind === 'layer';
  const stats = layer ? [a.mean!, a.rstd] : [a.rstd];

  const dyDtype = a.dy.dtype as StoredFloat;
  const dyKey = dyDtype === 'f16' ? '.dy16' : '';
  const g = rowGrid(gpu, s.rows);
  gpu.dispatch({
    label: `${op}.dx`,
    pipeline: gpu.pipeline(`norm.backward.input.${kind}.${s.weightDtype}${dyKey}`, () =>
      normBackwardInputWgsl(kind, s.weightDtype, dyDtype),
    ),
    bindings: [a.dy, a.x, a.weight, ...stats, a.dx],
    params: new Params()
      .u32(s.rows)
      .u32(s.cols)
      .u32(g.rowsX)
      .u32(a.accumulateDx ? 1 : 0),
    workgroups: g.workgroups,
  });

  const wantBias = layer && a.dbias !== undefined;
  if (!a.dweight && !wantBias) return;
  // The kernels always produce both weight and bias sums for LayerNorm; a frozen one goes to scratch.
  const dweight = a.dweight ?? gpu.scratch(`${op}.dweight(unused)`, 'f32', [s.cols]);
  const dbias = layer ? (a.dbias ?? gpu.scratch(`${op}.dbias(unused)`, 'f32', [s.cols])) : undefined;
  const { chunks, rowsPerChunk } = normChunking(s.rows);
  const partial = gpu.scratch(`${op}.partial`, 'f32', [layer ? 2 : 1, chunks, s.cols]);
  gpu.dispatch({
    label: `${op}.dweight.partial`,
    pipeline: gpu.pipeline(`norm.backward.params.partial.${kind}${dyKey}`, () =>
      normBackwardParamsPartialWgsl(kind, dyDtype),
    ),
    bindings: [a.dy, a.x, ...stats, partial],
    params: new Params().u32(s.rows).u32(s.cols).u32(rowsPerChunk).u32(chunks),
    workgroups: [Math.ceil(s.cols / ROW_WG), chunks],
  });
  const fg = grid1d(gpu, s.cols, ROW_WG);
  gpu.dispatch({
    label: `${op}.dweight.final`,
    pipeline: gpu.pipeline(`norm.backward.params.final.${kind}`, () => normBackwardParamsFinalWgsl(kind)),
    bindings: dbias ? [partial, dweight, dbias] : [partial, dweight],
    params: new Params()
      .u32(s.cols)
      .u32(chunks)
      .u32(a.accumulateParams ? 1 : 0)
      .u32(0),
    workgroups: [fg.workgroups[0], 1],
  });
}

/** Record RMSNorm forward: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps) per row. */
export function rmsNormForward(gpu: GpuRuntime, args: RmsNormForwardArgs): void {
  normForward(gpu, 'rms', 'rmsNormForward', args);
}

/** Record LayerNorm forward: y = (x - mean) * rstd * w + b (biased variance, like torch). */
export function layerNormForward(gpu: GpuRuntime, args: LayerNormForwardArgs): void {
  normForward(gpu, 'layer', 'layerNormForward', args);
}

/** Record RMSNorm backward: dx, and dweight if given (summed over rows in a fixed order). */
export function rmsNormBackward(gpu: GpuRuntime, args: RmsNormBackwardArgs): void {
  normBackward(gpu, 'rms', 'rmsNormBackward', args);
}

/** Record LayerNorm backward: dx, and dweight / dbias if given (summed over rows in a fixed order). */
export function layerNormBackward(gpu: GpuRuntime, args: LayerNormBackwardArgs): void {
  normBackward(gpu, 'layer', 'layerNormBackward', args);
}

// ---- float64 references -------------------------------------------------------------------------

export interface NormReferenceResult {
  y: Float64Array;
  /** Per-row mean (zeros for RMSNorm). */
  mean: Float64Array;
  rstd: Float64Array;
}

export interface NormBackwardReferenceResult {
  dx: Float64Array;
  dweight: Float64Array;
  /** Zeros for RMSNorm. */
  dbias: Float64Array;
}

function refShape(op: string, x: ArrayLike<number>, cols: number, weight: ArrayLike<number>): number {
  if (weight.length !== cols || x.length % cols !== 0)
    throw new Error(`${op}: x has ${x.length} values, weight ${weight.length}, rows of ${cols}`);
  return x.length / cols;
}

/** Float64 RMSNorm (kind 'rms') or LayerNorm (kind 'layer', bias required) forward over rows of `cols`. */
export function normReference(
  kind: NormKind,
  x: ArrayLike<number>,
  cols: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number> | undefined,
  eps: number,
): NormReferenceResult {
  const rows = refShape('normReference', x, cols, weight);
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let mu = 0;
    if (kind === 'layer') {
      for (let c = 0; c < cols; c++) mu += x[o + c]!;
      mu /= cols;
    }
    let q = 0;
    for (let c = 0; c < cols; c++) q += (x[o + c]! - mu) ** 2;
    const rs = 1 / Math.sqrt(q / cols + eps);
    for (let c = 0; c < cols; c++) {
      y[o + c] = (x[o + c]! - mu) * rs * weight[c]! + (kind === 'layer' ? bias![c]! : 0);
    }
    mean[r] = mu;
    rstd[r] = rs;
  }
  return { y, mean, rstd };
}

/** Float64 gradients of sum(dy * norm(x)) with respect to x, weight and bias (statistics recomputed). */
export function normBackwardReference(
  kind: NormKind,
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  cols: number,
  weight: ArrayLike<number>,
  eps: number,
): NormBackwardReferenceResult {
  const rows = refShape('normBackwardReference', x, cols, weight);
  const { mean, rstd } = normReference(kind, x, cols, weight, new Float64Array(cols), eps);
  const dx = new Float64Array(x.length);
  const dweight = new Float64Array(cols);
  const dbias = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const rs = rstd[r]!;
    let sumG = 0;
    let sumGX = 0;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[o + c]! - mean[r]!) * rs;
      const g = dy[o + c]! * weight[c]!;
      sumG += g;
      sumGX += g * xhat;
      dweight[c] = dweight[c]! + dy[o + c]! * xhat;
      if (kind === 'layer') dbias[c] = dbias[c]! + dy[o + c]!;
    }
    const meanG = kind === 'layer' ? sumG / cols : 0;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[o + c]! - mean[r]!) * rs;
      dx[o + c] = rs * (dy[o + c]! * weight[c]! - meanG - (xhat * sumGX) / cols);
    }
  }
  return { dx, dweight, dbias };
}

/** Float64 RMSNorm forward (mean is all zeros). */
export function rmsNormReference(
  x: ArrayLike<number>,
  cols: number,
  weight: ArrayLike<number>,
  eps: number,
): NormReferenceResult {
  return normReference('rms', x, cols, weight, undefined, eps);
}

/** Float64 LayerNorm forward. */
export function layerNormReference(
  x: ArrayLike<number>,
  cols: number,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  eps: number,
): NormReferenceResult {
  return normReference('layer', x, cols, weight, bias, eps);
}

/** Float64 RMSNorm backward (dbias is all zeros). */
export function rmsNormBackwardReference(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  cols: number,
  weight: ArrayLike<number>,
  eps: number,
): NormBackwardReferenceResult {
  return normBackwardReference('rms', dy, x, cols, weight, eps);
}

/** Float64 LayerNorm backward (the bias does not enter the gradients). */
export function layerNormBackwardReference(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  cols: number,
  weight: ArrayLike<number>,
  eps: number,
): NormBackwardReferenceResult {
  return normBackwardReference('layer', dy, x, cols, weight, eps);
}
