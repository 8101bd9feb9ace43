// Attention against a key/value cache, for generating text token by token: the keys and values of earlier
// positions stay on the GPU (appendToCache writes each new position's), and each step attends only its new
// query rows (cachedAttention), instead of recomputing the whole sequence. Float64 reference next to it.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { CACHED_ATTENTION_WG, cachedAttentionWgsl } from './cached-attention.wgsl.js';
import { checkTensor } from './rows.js';

export interface CachedAttentionArgs {
  /** New query rows [rows, nHeads, headDim] f32, at positions past .. past + rows - 1. */
  q: Tensor;
  /** [capacity, nKvHeads, headDim] f32, filled through position past + rows - 1. */
  kCache: Tensor;
  vCache: Tensor;
  /** Output [rows, nHeads, headDim] f32. */
  o: Tensor;
  /** Positions in the cache before the first new row. */
  past: number;
  /** Multiplier of q.k (default 1 / sqrt(headDim)). */
  scale?: number;
}

export interface CachedAttentionShape {
  rows: number;
  past: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

function shapeOf(args: CachedAttentionArgs): CachedAttentionShape {
  const op = 'cachedAttention';
  checkTensor(op, 'q', args.q, ['f32'], [-1, -1, -1]);
  const [rows, nHeads, headDim] = args.q.shape as [number, number, number];
  checkTensor(op, 'kCache', args.kCache, ['f32'], [-1, -1, headDim]);
  const [capacity, nKvHeads] = args.kCache.shape as [number, number];
  checkTensor(op, 'vCache', args.vCache, ['f32'], [capacity, nKvHeads, headDim]);
  checkTensor(op, 'o', args.o, ['f32'], [rows, nHeads, headDim]);
  if (nKvHeads < 1 || nHeads % nKvHeads !== 0)
    throw new Error(`${op}: the cache's ${nKvHeads} kv heads must divide the ${nHeads} query heads`);
  if (!Number.isInteger(args.past) || args.past < 0)
    throw new Error(`${op}: past must be a non-negative integer, got ${args.past}`);
  if (args.past + rows > capacity)
    throw new Error(`${op}: positions up to ${args.past + rows} exceed the cache's capacity of ${capacity}`);
  return { rows, past: args.past, nHeads, nKvHeads, headDim };
}

/** o[i, h] = softmax over keys 0 ..= past + i of scale q[i, h] . k[j, h / group] applied to v. */
export function cachedAttention(gpu: GpuRuntime, args: CachedAttentionArgs): void {
  const s = shapeOf(args);
  if (s.rows === 0) return;
  const scale = args.scale ?? 1 / Math.sqrt(s.headDim);
  gpu.dispatch({
    label: 'cachedAttention',
    pipeline: gpu.pipeline(`cachedAttention:${s.headDim}:${CACHED_ATTENTION_WG}`, () =>
      cachedAttentionWgsl(s.headDim),
    ),
    bindings: [args.q, args.kCache, args.vCache, args.o],
    params: new Params()
      .u32(s.rows)
      .u32(s.past)
      .u32(s.nHeads)
      .u32(s.nHeads / s.nKvHeads)
      .u32(s.nKvHeads)
      .f32(scale),
    workgroups: [s.rows, s.nHeads, 1],
  });
}

/** Copy rows [n, nKvHeads, headDim] into cache positions position .. position + n - 1 (a recorded copy). */
export function appendToCache(gpu: GpuRuntime, cache: Tensor, rows: Tensor, position: number): void {
  const op = 'appendToCache';
  checkTensor(op, 'cache', cache, ['f32'], [-1, -1, -1]);
  checkTensor(op, 'rows', rows, ['f32'], [-1, cache.shape[1]!, cache.shape[2]!]);
  const n = rows.shape[0]!;
  if (!Number.isInteger(position) || position < 0 || position + n > cache.shape[0]!)
    throw new Error(
      `${op}: positions ${position} .. ${position + n - 1} are outside the cache's ${cache.shape[0]} positions`,
    );
  const rowBytes = cache.shape[1]! * cache.shape[2]! * 4;
  gpu
    .commandEncoder()
    .copyBufferToBuffer(
      rows.buffer,
      rows.byteOffset,
      cache.buffer,
      cache.byteOffset + position * rowBytes,
      n * rowBytes,
    );
}

/** Float64 reference: q [rows, nHeads, D], k and v [past + rows (or more), nKvHeads, D]. */
export function cachedAttentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: CachedAttentionShape,
  scale = 1 / Math.sqrt(s.headDim),
): Float64Array {
  const { rows, past, nHeads: H, nKvHeads: HK, headDim: D } = s;
  const o = new Float64Array(rows * H * D);
  for (let i = 0; i < rows; i++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / HK));
      const keys = past + i + 1;
      const scores = new Float64Array(keys);
      for (let j = 0; j < keys; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(i * H + h) * D + d]! * k[(j * HK + hk) * D + d]!;
        scores[j] = dot * scale;
      }
      const max = scores.reduce((m, x) => Math.max(m, x), -Infinity);
      let sum = 0;
      for (let j = 0; j < keys; j++) sum += scores[j] = Math.exp(scores[j]! - max);
      for (let j = 0; j < keys; j++)
        for (let d = 0; d < D; d++) o[(i * H + h) * D + d]! += (scores[j]! / sum) * v[(j * HK + hk) * D + d]!;
    }
  return o;
}
