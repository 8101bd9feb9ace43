// Deterministic reductions over one tensor or a list of tensors (sum, sum of squares, global norm, max,
// max |x|, non-finite count) into an element of a small GPU tensor, so the result can feed later kernels
// (AdamW's clipping, skipping a step) or be read back later without a host sync in the hot path. Also
// column sums (bias gradients). Each next to a float64 reference.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { floatDType } from './elementwise.js';
import { grid1d } from './grid.js';
import { elementSlices } from '../binding-blocks.js';
import {
  COLUMN_SUM_WORKGROUP_SIZE,
  columnSumWgsl,
  REDUCE_VALUES_PER_THREAD,
  REDUCE_WORKGROUP_SIZE,
  reduceWgsl,
  type ReduceCombine,
  type ReduceKernel,
  type ReduceMap,
} from './reduce.wgsl.js';

export { REDUCE_VALUES_PER_THREAD } from './reduce.wgsl.js';

export type ReduceOp = 'sum' | 'sumOfSquares' | 'norm' | 'max' | 'absMax' | 'nonFiniteCount';

const OP_KERNEL: Record<ReduceOp, { map: ReduceMap; combine: ReduceCombine }> = {
  sum: { map: 'value', combine: 'sum' },
  sumOfSquares: { map: 'square', combine: 'sum' },
  norm: { map: 'square', combine: 'sum' },
  max: { map: 'value', combine: 'max' },
  absMax: { map: 'abs', combine: 'max' },
  nonFiniteCount: { map: 'nonFinite', combine: 'count' },
};

export interface ReduceOptions {
  /** Result tensor (f32; u32 for nonFiniteCount); default a new [1] workspace tensor. */
  out?: Tensor;
  /** Element of `out` to write (several statistics can share one small buffer). */
  outIndex?: number;
  /**
   * Combine with out[outIndex] instead of overwriting it: add (sum, sumOfSquares, nonFiniteCount) or
   * take the max (max, absMax). A running count or maximum over tensors reduced at different times (a
   * step's gradients as the backward produces them), still without a host read. Not for norm.
   */
  accumulate?: boolean;
  /** Values each invocation combines per level (tests use small values to exercise several levels). */
  valuesPerThread?: number;
}

/** One level: n values -> ceil(n / perThread) values at dst[dstOffset...]. Returns that count. */
function launch(
  gpu: GpuRuntime,
  kernel: ReduceKernel,
  src: Tensor,
  n: number,
  perThread: number,
  dst: Tensor,
  dstOffset: number,
): number {
  const threads = Math.max(1, Math.ceil(n / perThread));
  const grid = grid1d(gpu, threads, REDUCE_WORKGROUP_SIZE);
  const key = `reduce:${kernel.source}:${kernel.map}:${kernel.combine}:${kernel.sqrt ? 'sqrt' : ''}${kernel.accumulate ? ':acc' : ''}`;
  gpu.dispatch({
    label: `reduce(${src.label})`,
    pipeline: gpu.pipeline(key, () => reduceWgsl(kernel)),
    bindings: [src, dst],
    params: new Params().u32(n).u32(threads).u32(grid.rowStride).u32(dstOffset),
    workgroups: grid.workgroups,
  });
  return threads;
}

/**
 * Reduce all elements of `tensors` (f32 or f16, any sizes) to one value written to out[outIndex]. The
 * result is bit-reproducible for the same inputs. Partials live in scratch tensors.
 */
export function reduce(
  gpu: GpuRuntime,
  op: ReduceOp,
  tensors: Tensor | readonly Tensor[],
  options: ReduceOptions = {},
): Tensor {
  const given: readonly Tensor[] = Array.isArray(tensors) ? tensors : [tensors as Tensor];
  if (given.length === 0) throw new Error(`reduce(${op}): no tensors`);
  // a tensor larger than one binding is reduced as its slices (each its own segment of the partials)
  const list = given.flatMap((t) => elementSlices(gpu, t));
  const sources = list.map((t) => floatDType(t, `reduce(${op})`));
  const accType = op === 'nonFiniteCount' ? 'u32' : 'f32';
  const out = options.out ?? gpu.tensor(`reduce.${op}`, accType, [1], 'workspace');
  const outIndex = options.outIndex ?? 0;
  if (out.dtype !== accType) throw new Error(`reduce(${op}): result tensor '${out}' must be ${accType}`);
  if (!Number.isInteger(outIndex) || outIndex < 0 || outIndex >= out.numel)
    throw new Error(`reduce(${op}): outIndex ${outIndex} outside '${out}'`);
  const perThread = options.valuesPerThread ?? REDUCE_VALUES_PER_THREAD;
  if (!Number.isInteger(perThread) || perThread < 2)
    throw new Error(`reduce(${op}): valuesPerThread must be an integer >= 2`);
  const { map, combine } = OP_KERNEL[op];
  const accumulate = options.accumulate ?? false;
  if (accumulate && op === 'norm')
    throw new Error('reduce(norm): accumulate is not defined for a norm; accumulate sumOfSquares instead');

  const partialsOf = list.map((t) => Math.max(1, Math.ceil(t.numel / perThread)));
  const total = partialsOf.reduce((a, b) => a + b, 0);
  if (total === 1) {
    const kernel = { source: sources[0]!, map, combine, sqrt: op === 'norm', accumulate };
    launch(gpu, kernel, list[0]!, list[0]!.numel, perThread, out, outIndex);
    return out;
  }
  // level 1: each tensor into its own segment of one partials vector
  let partial = gpu.scratch(`reduce.${op}.partial`, accType, [total]);
  let offset = 0;
  list.forEach((t, k) => {
    const kernel = { source: sources[k]!, map, combine, sqrt: false };
    offset += launch(gpu, kernel, t, t.numel, perThread, partial, offset);
  });
  // further levels over the partials until one invocation writes the result
  let n = total;
  for (;;) {
    const next = Math.ceil(n / perThread);
    const last = next === 1;
    const dst = last ? out : gpu.scratch(`reduce.${op}.partial`, accType, [next]);
    const kernel = {
      source: 'partial' as const,
      map,
      combine,
      sqrt: last && op === 'norm',
      accumulate: last && accumulate,
    };
    launch(gpu, kernel, partial, n, perThread, dst, last ? outIndex : 0);
    if (last) return out;
    partial = dst;
    n = next;
  }
}

export const reduceSum = (gpu: GpuRuntime, t: Tensor | readonly Tensor[], o?: ReduceOptions): Tensor =>
  reduce(gpu, 'sum', t, o);
export const reduceSumOfSquares = (
  gpu: GpuRuntime,
  t: Tensor | readonly Tensor[],
  o?: ReduceOptions,
): Tensor => reduce(gpu, 'sumOfSquares', t, o);
/** sqrt of the sum of squares over all tensors (the global gradient norm of clipping). */
export const globalNorm = (gpu: GpuRuntime, t: Tensor | readonly Tensor[], o?: ReduceOptions): Tensor =>
  reduce(gpu, 'norm', t, o);
export const reduceMax = (gpu: GpuRuntime, t: Tensor | readonly Tensor[], o?: ReduceOptions): Tensor =>
  reduce(gpu, 'max', t, o);
export const reduceAbsMax = (gpu: GpuRuntime, t: Tensor | readonly Tensor[], o?: ReduceOptions): Tensor =>
  reduce(gpu, 'absMax', t, o);
/** Number of NaN and +-Inf elements (u32). */
export const nonFiniteCount = (gpu: GpuRuntime, t: Tensor | readonly Tensor[], o?: ReduceOptions): Tensor =>
  reduce(gpu, 'nonFiniteCount', t, o);

/** Float64 reference of reduce (max propagates NaN; the max of nothing is -Infinity). */
export function reduceReference(op: ReduceOp, arrays: readonly ArrayLike<number>[]): number {
  let acc = op === 'max' || op === 'absMax' ? -Infinity : 0;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      switch (op) {
        case 'sum':
          acc += v;
          break;
        case 'sumOfSquares':
        case 'norm':
          acc += v * v;
          break;
        case 'max':
          acc = Number.isNaN(acc) || Number.isNaN(v) ? NaN : Math.max(acc, v);
          break;
        case 'absMax':
          acc = Number.isNaN(acc) || Number.isNaN(v) ? NaN : Math.max(acc, Math.abs(v));
          break;
        case 'nonFiniteCount':
          if (!Number.isFinite(v)) acc++;
          break;
      }
    }
  }
  return op === 'norm' ? Math.sqrt(acc) : acc;
}

// ---- column sums (bias gradient) ------------------------------------------------------------------------------

/** Rows one invocation adds before a second launch sums the per-chunk partials. */
export const COLUMN_SUM_CHUNK_ROWS = 256;

export interface ColumnSumOptions {
  /** Add to out's current contents (gradient accumulation) instead of overwriting. */
  accumulate?: boolean;
  /** Rows per first-level chunk (tests use small values). */
  chunkRows?: number;
}

/**
 * out[c] = sum over rows of x[r, c] for x of shape [..., cols] (f32 or f16) into out of shape [cols]
 * (f32 or f16; f32 accumulation): the bias gradient from dY. Deterministic.
 */
export function columnSum(gpu: GpuRuntime, x: Tensor, out?: Tensor, options: ColumnSumOptions = {}): Tensor {
  const source = floatDType(x, 'columnSum');
  const cols = x.shape[x.shape.length - 1];
  if (cols === undefined || cols === 0) throw new Error(`columnSum: '${x}' has no columns`);
  const rows = x.numel / cols;
  const result = out ?? gpu.tensor('columnSum.out', source, [cols], 'activations');
  const output = floatDType(result, 'columnSum');
  if (result.numel !== cols)
    throw new Error(`columnSum: '${result}' must have ${cols} elements (columns of '${x}')`);
  const maxGroups = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  const xGroups = Math.ceil(cols / 2 / COLUMN_SUM_WORKGROUP_SIZE);
  if (xGroups > maxGroups) throw new Error(`columnSum: ${cols} columns exceed one launch`);
  let chunkRows = options.chunkRows ?? COLUMN_SUM_CHUNK_ROWS;
  chunkRows = Math.max(chunkRows, Math.ceil(rows / maxGroups));
  const chunks = Math.max(1, Math.ceil(rows / chunkRows));
  const accumulate = options.accumulate ? 1 : 0;
  const run = (
    src: Tensor,
    srcType: 'f32' | 'f16',
    dst: Tensor,
    dstType: 'f32' | 'f16',
    r: number,
    perChunk: number,
    acc: number,
  ): void => {
    gpu.dispatch({
      label: `columnSum(${x.label})`,
      pipeline: gpu.pipeline(`column_sum:${srcType}:${dstType}`, () => columnSumWgsl(srcType, dstType)),
      bindings: [src, dst],
      params: new Params().u32(r).u32(cols).u32(perChunk).u32(acc),
      workgroups: [xGroups, Math.max(1, Math.ceil(r / perChunk))],
    });
  };
  if (chunks === 1) {
    run(x, source, result, output, rows, Math.max(1, rows), accumulate);
    return result;
  }
  const partial = gpu.scratch('columnSum.partial', 'f32', [chunks, cols]);
  run(x, source, partial, 'f32', rows, chunkRows, 0);
  run(partial, 'f32', result, output, chunks, chunks, accumulate);
  return result;
}

/** Bias gradient: the column sums of dY. */
export const biasGrad = columnSum;

export function columnSumReference(x: ArrayLike<number>, cols: number): Float64Array {
  if (x.length % cols) throw new Error(`columnSumReference: ${x.length} elements are not rows of ${cols}`);
  const out = new Float64Array(cols);
  for (let i = 0; i < x.length; i++) out[i % cols] = out[i % cols]! + x[i]!;
  return out;
}
