// Softmax cross-entropy with Hugging Face's semantics: logits [tokens, vocab] (labels already shifted by
// the caller), i32 targets where ignoreIndex (-100) marks tokens without a loss, loss = mean over the
// kept tokens (counted on the GPU) or sum / divideBy (HF's num_items_in_batch), gradient
// (softmax - onehot) / count on kept rows and 0 on ignored ones. Float64 references next to them.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import {
  CE_BACKWARD_COLS_PER_WG,
  crossEntropyBackwardF16Wgsl,
  crossEntropyBackwardWgsl,
  crossEntropyForwardWgsl,
  crossEntropyReduceWgsl,
} from './cross-entropy.wgsl.js';
import { grid1d } from './grid.js';
import { scalarIndex, type GpuScalar } from './loss-scale.js';
import { ROW_WG, checkDisjoint, checkTensor, rowGrid, type StoredFloat } from './rows.js';

/** torch / Hugging Face's default ignore_index. */
export const IGNORE_INDEX = -100;

export interface CrossEntropyOptions {
  /** Target value meaning "no loss for this token" (default -100). */
  ignoreIndex?: number;
  /** Divide the summed loss by this instead of the kept count (HF's num_items_in_batch); > 0. */
  divideBy?: number;
}

export interface CrossEntropyForwardArgs extends CrossEntropyOptions {
  /** f32 or f16 [..., vocab]. */
  logits: Tensor;
  /** i32, one per row of logits. */
  targets: Tensor;
  /** f32 [tokens] (written): per-token loss, 0 where ignored. */
  losses: Tensor;
  /** f32 [tokens] (written): log(sum(exp(logits))) per row, for the backward. */
  logSumExp: Tensor;
  /** f32 [1] (written): the mean loss over kept tokens (NaN when none is kept, like torch). */
  meanLoss: Tensor;
  /** u32 [1] (written): the number of kept tokens. */
  keptCount: Tensor;
}

export interface CrossEntropyBackwardArgs extends CrossEntropyOptions {
  logits: Tensor;
  targets: Tensor;
  logSumExp: Tensor;
  keptCount: Tensor;
  /**
   * f32 or f16 (mixed precision: the lm_head's matmul operand; results past 65504 become inf), the shape
   * of logits (written). May be `logits` itself (same dtype) to overwrite it in place.
   */
  dlogits: Tensor;
  /** Gradient of whatever uses the mean loss with respect to it (default 1; a loss scale). */
  gradScale?: number;
  /** Also multiply by this f32 element on the GPU (a dynamic loss scale: see createLossScaleState). */
  gradScaleBy?: GpuScalar;
}

function ceShape(op: string, logits: Tensor, targets: Tensor): { rows: number; vocab: number } {
  checkTensor(op, 'logits', logits, ['f32', 'f16']);
  const vocab = logits.shape[logits.shape.length - 1] ?? 0;
  if (vocab < 1) throw new Error(`${op}: logits must be [..., vocab] with vocab >= 1, got ${logits}`);
  const rows = logits.numel / vocab;
  checkTensor(op, 'targets', targets, ['i32']);
  if (targets.numel !== rows)
    throw new Error(`${op}: targets must hold one i32 per logits row (${rows}), got ${targets}`);
  return { rows, vocab };
}

function checkOptions(op: string, o: CrossEntropyOptions): { ignoreIndex: number; divideBy: number } {
  const ignoreIndex = o.ignoreIndex ?? IGNORE_INDEX;
  if (!Number.isInteger(ignoreIndex))
    throw new Error(`${op}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  if (o.divideBy !== undefined && !(o.divideBy > 0))
    throw new Error(`${op}: divideBy must be > 0, got ${o.divideBy}`);
  return { ignoreIndex, divideBy: o.divideBy ?? 0 };
}

/** Record the forward: per-token losses, log-sum-exp, the mean loss and the kept count. */
export function crossEntropyForward(gpu: GpuRuntime, a: CrossEntropyForwardArgs): void {
  const op = 'crossEntropyForward';
  const { rows, vocab } = ceShape(op, a.logits, a.targets);
  const { ignoreIndex, divideBy } = checkOptions(op, a);
  checkTensor(op, 'losses', a.losses, ['f32']);
  checkTensor(op, 'logSumExp', a.logSumExp, ['f32']);
  if (a.losses.numel !== rows) throw new Error(`${op}: losses must hold ${rows} f32, got ${a.losses}`);
  if (a.logSumExp.numel !== rows)
    throw new Error(`${op}: logSumExp must hold ${rows} f32, got ${a.logSumExp}`);
  checkTensor(op, 'meanLoss', a.meanLoss, ['f32'], [1]);
  checkTensor(op, 'keptCount', a.keptCount, ['u32'], [1]);
  checkDisjoint(op, {
    logits: a.logits,
    targets: a.targets,
    losses: a.losses,
    logSumExp: a.logSumExp,
    meanLoss: a.meanLoss,
    keptCount: a.keptCount,
  });
  const dtype = a.logits.dtype as StoredFloat;
  const g = rowGrid(gpu, rows);
  gpu.dispatch({
    label: op,
    pipeline: gpu.pipeline(`crossEntropy.forward.${dtype}`, () => crossEntropyForwardWgsl(dtype)),
    bindings: [a.logits, a.targets, a.losses, a.logSumExp],
    params: new Params().u32(rows).u32(vocab).u32(g.rowsX).i32(ignoreIndex),
    workgroups: g.workgroups,
  });
  gpu.dispatch({
    label: `${op}.mean`,
    pipeline: gpu.pipeline('crossEntropy.reduce', () => crossEntropyReduceWgsl),
    bindings: [a.losses, a.targets, a.meanLoss, a.keptCount],
    params: new Params().u32(rows).i32(ignoreIndex).f32(divideBy).u32(0),
    workgroups: [1],
  });
}

/**
 * Record the backward: dlogits = (softmax - onehot) * gradScale (* gradScaleBy) / count on kept rows, 0 on
 * ignored rows.
 */
export function crossEntropyBackward(gpu: GpuRuntime, a: CrossEntropyBackwardArgs): void {
  const op = 'crossEntropyBackward';
  const { rows, vocab } = ceShape(op, a.logits, a.targets);
  const { ignoreIndex, divideBy } = checkOptions(op, a);
  checkTensor(op, 'dlogits', a.dlogits, ['f32', 'f16']);
  checkTensor(op, 'dlogits', a.dlogits, [a.dlogits.dtype], a.logits.shape);
  checkTensor(op, 'keptCount', a.keptCount, ['u32'], [1]);
  checkTensor(op, 'logSumExp', a.logSumExp, ['f32']);
  if (a.logSumExp.numel !== rows)
    throw new Error(`${op}: logSumExp must hold ${rows} f32, got ${a.logSumExp}`);
  const inPlace = a.dlogits.buffer === a.logits.buffer && a.dlogits.byteOffset === a.logits.byteOffset;
  if (inPlace && a.dlogits.dtype !== a.logits.dtype)
    throw new Error(`${op}: dlogits overwrites logits in place, so it must have their dtype: ${a.dlogits}`);
  checkDisjoint(op, {
    logits: inPlace ? undefined : a.logits,
    targets: a.targets,
    logSumExp: a.logSumExp,
    keptCount: a.keptCount,
    dlogits: a.dlogits,
    gradScaleBy: a.gradScaleBy?.tensor,
  });
  const gradScale = a.gradScale ?? 1;
  if (!Number.isFinite(gradScale)) throw new Error(`${op}: gradScale must be finite, got ${gradScale}`);
  const scaleIndex = a.gradScaleBy ? scalarIndex(op, 'gradScaleBy', a.gradScaleBy, 'f32') : 0;
  const scaled = a.gradScaleBy !== undefined;
  const variant = `${inPlace ? 'inPlace' : 'out'}${scaled ? '.scaledBy' : ''}`;
  const dtype = a.logits.dtype as StoredFloat;
  const rest = [a.targets, a.logSumExp, a.keptCount];
  if (a.gradScaleBy) rest.push(a.gradScaleBy.tensor);
  if (a.dlogits.dtype === 'f16') {
    const total = rows * vocab;
    const fg = grid1d(gpu, Math.ceil(total / 2), ROW_WG);
    gpu.dispatch({
      label: op,
      pipeline: gpu.pipeline(`crossEntropy.backward.${dtype}.${variant}.f16`, () =>
        crossEntropyBackwardF16Wgsl(dtype, inPlace, scaled),
      ),
      bindings: inPlace ? [a.logits, ...rest] : [a.logits, ...rest, a.dlogits],
      params: new Params()
        .u32(total)
        .u32(vocab)
        .u32(fg.rowStride)
        .i32(ignoreIndex)
        .f32(gradScale)
        .f32(divideBy)
        .u32(scaleIndex)
        .u32(0),
      workgroups: fg.workgroups,
    });
    return;
  }
  const g = rowGrid(gpu, rows, Math.ceil(vocab / CE_BACKWARD_COLS_PER_WG));
  gpu.dispatch({
    label: op,
    pipeline: gpu.pipeline(`crossEntropy.backward.${dtype}.${variant}`, () =>
      crossEntropyBackwardWgsl(dtype, inPlace, scaled),
    ),
    bindings: inPlace ? [a.logits, ...rest] : [a.logits, ...rest, a.dlogits],
    params: new Params()
      .u32(rows)
      .u32(vocab)
      .u32(g.rowsX)
      .i32(ignoreIndex)
      .f32(gradScale)
      .f32(divideBy)
      .u32(scaleIndex)
      .u32(0),
    workgroups: g.workgroups,
  });
}

// ---- float64 references -------------------------------------------------------------------------

export interface CrossEntropyReferenceResult {
  losses: Float64Array;
  logSumExp: Float64Array;
  meanLoss: number;
  keptCount: number;
}

/** Float64 forward: per-token loss (0 if ignored, NaN for a target outside the vocabulary) and the mean. */
export function crossEntropyReference(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  vocab: number,
  options: CrossEntropyOptions = {},
): CrossEntropyReferenceResult {
  const ignoreIndex = options.ignoreIndex ?? IGNORE_INDEX;
  const rows = targets.length;
  if (logits.length !== rows * vocab)
    throw new Error(`crossEntropyReference: ${logits.length} logits for ${rows} x ${vocab}`);
  const losses = new Float64Array(rows);
  const logSumExp = new Float64Array(rows);
  let sum = 0;
  let kept = 0;
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < vocab; c++) m = Math.max(m, logits[r * vocab + c]!);
    let s = 0;
    for (let c = 0; c < vocab; c++) s += Math.exp(logits[r * vocab + c]! - m);
    const lse = m + Math.log(s);
    logSumExp[r] = lse;
    const t = targets[r]!;
    if (t === ignoreIndex) continue;
    losses[r] = t >= 0 && t < vocab ? lse - logits[r * vocab + t]! : Number.NaN;
    sum += losses[r]!;
    kept++;
  }
  const denom = options.divideBy ?? kept;
  return { losses, logSumExp, meanLoss: denom > 0 ? sum / denom : Number.NaN, keptCount: kept };
}

/** Float64 gradient of gradScale * meanLoss with respect to the logits. */
export function crossEntropyBackwardReference(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  vocab: number,
  options: CrossEntropyOptions & { gradScale?: number } = {},
): Float64Array {
  const ignoreIndex = options.ignoreIndex ?? IGNORE_INDEX;
  const { logSumExp, keptCount } = crossEntropyReference(logits, targets, vocab, options);
  const scale = (options.gradScale ?? 1) / (options.divideBy ?? keptCount);
  const grad = new Float64Array(logits.length);
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r]!;
    if (t === ignoreIndex) continue;
    for (let c = 0; c < vocab; c++) {
      const i = r * vocab + c;
      grad[i] = (Math.exp(logits[i]! - logSumExp[r]!) - (c === t ? 1 : 0)) * scale;
    }
  }
  return grad;
}
