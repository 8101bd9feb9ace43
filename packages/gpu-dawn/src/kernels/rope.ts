// Rotary position embedding (RoPE), Hugging Face rotate-half convention, applied in place to q and k (f32
// or f16) laid out [tokens, heads, headDim] (q and k may have different head counts: GQA). Backward is
// the inverse rotation applied to dq and dk. Angles come from a (cos, sin) table computed on the host the
// way HF does it in float32, not from WGSL sin/cos, whose accuracy is only specified on [-pi, pi] and
// which GPUs implement with fast approximations that are poor at the large angles of late positions.
import type { MemoryCategory } from '../memory.js';
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { grid1d } from './grid.js';
import { checkTensor, isPositionTensor, resolveRange, type TokenPositions } from './rows.js';
import { ROPE_WG, ropeF16Wgsl, ropeWgsl } from './rope.wgsl.js';

export interface RopeTableOptions {
  /** Rotated dimensions per head (even). */
  headDim: number;
  /** Positions the table covers: 0 .. maxPositions - 1. */
  maxPositions: number;
  /** config.rope_theta (default 10000). */
  theta?: number;
  /** rope_scaling {type: "linear", factor}: inverse frequencies divided by factor. */
  linearScalingFactor?: number;
  /** Multiplies cos and sin (HF's attention_factor; 1 for default and linear RoPE). */
  attentionScaling?: number;
  /** Precomputed inverse frequencies [headDim / 2] for other rope types (llama3, yarn, ...). */
  invFreq?: ArrayLike<number>;
}

/**
 * HF's inverse frequencies in float32: 1 / theta^(2i / headDim), each step rounded to f32 as torch does
 * (`arange(0, dim, 2).float() / dim`, `base ** that`, `1.0 / that`), then divided by the linear factor.
 */
export function ropeInvFreq(headDim: number, theta = 10000, linearScalingFactor = 1): Float32Array {
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2)
    throw new Error(`ropeInvFreq: headDim must be a positive even integer, got ${headDim}`);
  if (!(theta > 0)) throw new Error(`ropeInvFreq: theta must be > 0, got ${theta}`);
  if (!(linearScalingFactor > 0))
    throw new Error(`ropeInvFreq: linearScalingFactor must be > 0, got ${linearScalingFactor}`);
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < out.length; i++) {
    const exponent = Math.fround((2 * i) / headDim);
    const inv = Math.fround(1 / Math.fround(theta ** exponent));
    out[i] = linearScalingFactor === 1 ? inv : Math.fround(inv / linearScalingFactor);
  }
  return out;
}

/** Host (cos, sin) table [maxPositions, headDim / 2, 2] in float32, angle = fround(invFreq * pos) as in HF. */
export function ropeTableValues(options: RopeTableOptions): Float32Array {
  const { headDim, maxPositions, attentionScaling = 1 } = options;
  if (!Number.isInteger(maxPositions) || maxPositions < 1)
    throw new Error(`ropeTableValues: maxPositions must be a positive integer, got ${maxPositions}`);
  const invFreq = options.invFreq
    ? Float32Array.from(options.invFreq)
    : ropeInvFreq(headDim, options.theta, options.linearScalingFactor);
  const half = headDim / 2;
  if (invFreq.length !== half)
    throw new Error(
      `ropeTableValues: invFreq has ${invFreq.length} values, headDim ${headDim} needs ${half}`,
    );
  const out = new Float32Array(maxPositions * half * 2);
  for (let pos = 0; pos < maxPositions; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(invFreq[i]! * pos);
      const o = (pos * half + i) * 2;
      out[o] = Math.fround(Math.cos(angle)) * attentionScaling;
      out[o + 1] = Math.fround(Math.sin(angle)) * attentionScaling;
    }
  }
  return out;
}

/** Upload a (cos, sin) table: f32 [maxPositions, headDim / 2, 2]. Build once per model, reuse every step. */
export function createRopeTable(
  gpu: GpuRuntime,
  options: RopeTableOptions,
  category: MemoryCategory = 'weights',
): Tensor {
  const values = ropeTableValues(options);
  return gpu.upload('rope.cosSin', 'f32', [options.maxPositions, options.headDim / 2, 2], values, category);
}

export interface RopeArgs {
  /** f32 or f16 [tokens, heads, headDim], rotated in place (f16: f32 math, each result rounded once). */
  q: Tensor;
  /** f32 or f16 [tokens, kvHeads, headDim], rotated in place (optional: one tensor can be rotated alone). */
  k?: Tensor;
  /** From createRopeTable: f32 [maxPositions, headDim / 2, 2]. */
  table: Tensor;
  /** Positions of the tokens: {offset, sequenceLength} or an i32 tensor [tokens] of position ids. */
  positions: TokenPositions;
}

function rope(gpu: GpuRuntime, op: string, sinSign: 1 | -1, x: Tensor, xName: string, a: RopeArgs): void {
  checkTensor(op, xName, x, ['f32', 'f16'], [-1, -1, -1]);
  const [tokens, heads, headDim] = x.shape as [number, number, number];
  checkTensor(op, 'table', a.table, ['f32'], [-1, -1, 2]);
  const [maxPositions, half] = a.table.shape as [number, number];
  if (headDim !== 2 * half)
    throw new Error(`${op}: ${xName} has headDim ${headDim}, the table covers ${2 * half}: ${x}, ${a.table}`);
  let offset = 0;
  let sequenceLength = 1;
  const byIds = isPositionTensor(a.positions);
  if (isPositionTensor(a.positions)) {
    checkTensor(op, 'positions', a.positions, ['i32'], [tokens]);
  } else {
    [offset, sequenceLength] = resolveRange(op, a.positions, tokens);
    const last = offset + Math.min(tokens, sequenceLength) - 1;
    if (tokens > 0 && last >= maxPositions)
      throw new Error(`${op}: position ${last} is past the table's ${maxPositions} positions`);
  }
  const pairs = tokens * heads * half;
  if (pairs === 0) return;
  if (x.dtype === 'f16') {
    ropeF16(gpu, op, sinSign, x, xName, a, { offset, sequenceLength, maxPositions, byIds });
    return;
  }
  const g = grid1d(gpu, pairs, ROPE_WG);
  gpu.dispatch({
    label: `${op}(${xName})`,
    pipeline: gpu.pipeline(`rope.${byIds ? 'ids' : 'range'}`, () => ropeWgsl(byIds)),
    bindings: byIds ? [x, a.table, a.positions as Tensor] : [x, a.table],
    params: new Params()
      .u32(pairs)
      .u32(heads)
      .u32(half)
      .u32(g.rowStride)
      .f32(sinSign)
      .u32(offset)
      .u32(sequenceLength)
      .u32(maxPositions),
    workgroups: g.workgroups,
  });
}

/** f16 x: in place by word pairs when half the head is even, else through a copy (see rope.wgsl.ts). */
function ropeF16(
  gpu: GpuRuntime,
  op: string,
  sinSign: 1 | -1,
  x: Tensor,
  xName: string,
  a: RopeArgs,
  r: { offset: number; sequenceLength: number; maxPositions: number; byIds: boolean },
): void {
  const [tokens, heads, headDim] = x.shape as [number, number, number];
  const half = headDim / 2;
  const inPlace = half % 2 === 0;
  const count = (tokens * heads * headDim) / (inPlace ? 4 : 2);
  const copy = inPlace ? undefined : gpu.scratch(`${op}.${xName}.rotated`, 'f16', x.shape);
  const g = grid1d(gpu, count, ROPE_WG);
  const bindings = [x, a.table];
  if (r.byIds) bindings.push(a.positions as Tensor);
  if (copy) bindings.push(copy);
  gpu.dispatch({
    label: `${op}(${xName})`,
    pipeline: gpu.pipeline(`rope.f16.${r.byIds ? 'ids' : 'range'}.${inPlace ? 'inPlace' : 'copy'}`, () =>
      ropeF16Wgsl(r.byIds, inPlace),
    ),
    bindings,
    params: new Params()
      .u32(count)
      .u32(heads)
      .u32(half)
      .u32(g.rowStride)
      .f32(sinSign)
      .u32(r.offset)
      .u32(r.sequenceLength)
      .u32(r.maxPositions),
    workgroups: g.workgroups,
  });
  if (copy)
    gpu
      .commandEncoder()
      .copyBufferToBuffer(copy.buffer, copy.byteOffset, x.buffer, x.byteOffset, x.bindingSize);
}

function checkQk(op: string, q: Tensor, k: Tensor | undefined, qName: string, kName: string): void {
  if (k && (k.shape.length !== 3 || k.shape[0] !== q.shape[0] || k.shape[2] !== q.shape[2]))
    throw new Error(`${op}: ${kName} must be [tokens, kvHeads, headDim] like ${qName}, got ${k} and ${q}`);
  if (k && k.buffer === q.buffer && k.byteOffset === q.byteOffset)
    throw new Error(`${op}: ${qName} and ${kName} are the same tensor; it would be rotated twice`);
}

/**
 * Record RoPE forward in place: x <- x * cos + rotate_half(x) * sin for q (and k). A position id outside
 * the table makes that token's outputs NaN (so it shows downstream) instead of reading a wrong angle.
 */
export function ropeForward(gpu: GpuRuntime, args: RopeArgs): void {
  checkQk('ropeForward', args.q, args.k, 'q', 'k');
  rope(gpu, 'ropeForward', 1, args.q, 'q', args);
  if (args.k) rope(gpu, 'ropeForward', 1, args.k, 'k', args);
}

export interface RopeBackwardArgs extends Omit<RopeArgs, 'q' | 'k'> {
  /** Gradient with respect to the rotated q, turned in place into the gradient of the unrotated q. */
  dq: Tensor;
  dk?: Tensor;
}

/** Record RoPE backward in place: the inverse rotation of dq (and dk), the transpose of the forward. */
export function ropeBackward(gpu: GpuRuntime, args: RopeBackwardArgs): void {
  checkQk('ropeBackward', args.dq, args.dk, 'dq', 'dk');
  const a: RopeArgs = { q: args.dq, table: args.table, positions: args.positions };
  rope(gpu, 'ropeBackward', -1, args.dq, 'dq', a);
  if (args.dk) rope(gpu, 'ropeBackward', -1, args.dk, 'dk', a);
}

// ---- float64 reference ---------------------------------------------------------------------------

/**
 * Float64 rotate-half RoPE of x [tokens, heads, headDim] with the given (cos, sin) table values
 * [maxPositions, headDim / 2, 2] and per-token positions. 'backward' applies the inverse rotation.
 */
export function ropeReference(
  x: ArrayLike<number>,
  tokens: number,
  heads: number,
  headDim: number,
  table: ArrayLike<number>,
  positions: ArrayLike<number>,
  direction: 'forward' | 'backward' = 'forward',
): Float64Array {
  if (x.length !== tokens * heads * headDim || positions.length !== tokens || headDim % 2)
    throw new Error(
      `ropeReference: ${x.length} values, ${positions.length} positions for [${tokens}, ${heads}, ${headDim}]`,
    );
  const half = headDim / 2;
  const maxPositions = table.length / (2 * half);
  const sign = direction === 'forward' ? 1 : -1;
  const y = new Float64Array(x.length);
  for (let t = 0; t < tokens; t++) {
    const pos = positions[t]!;
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        if (pos < 0 || pos >= maxPositions) {
          y[base + i] = y[base + i + half] = Number.NaN;
          continue;
        }
        const c = table[(pos * half + i) * 2]!;
        const s = sign * table[(pos * half + i) * 2 + 1]!;
        const a = x[base + i]!;
        const b = x[base + i + half]!;
        y[base + i] = a * c - b * s;
        y[base + i + half] = b * c + a * s;
      }
    }
  }
  return y;
}
