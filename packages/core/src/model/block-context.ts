// What a transformer block needs to run (the GPU, the config, the weights, the batch geometry) and the
// steps every block shares: a resolved linear's forward, input gradient and parameter gradients, a norm's
// gradients, the attention backward.
import {
  attentionBackward,
  biasGrad,
  cast,
  layerNormBackward,
  layerNormForward,
  rmsNormBackward,
  rmsNormForward,
  type GpuRuntime,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import type { ModelConfig } from '../hf/index.js';
import type { ResolvedLinear, ResolvedNorm, ResolvedParameter } from './block-parameters.js';
import type { GradientSink, GradTarget } from './gradient-sink.js';
import { linearBackwardInput, linearForward } from './linear.js';
import type { ModelWeights } from './weights.js';
import type { Precision } from './precision.js';

export interface BatchShape {
  batch: number;
  seqLen: number;
}

export interface BlockContext {
  gpu: GpuRuntime;
  config: ModelConfig;
  weights: ModelWeights;
  shape: BatchShape;
  /** batch * seqLen */
  tokens: number;
  /** f32, or mixed: matmul operands f16 (operandDtype), the residual stream and statistics f32. */
  precision: Precision;
  /** The dtype of matmul operands: activations the next matmul reads and their gradients. */
  operand: 'f16' | 'f32';
  /** LLaMA: the RoPE cos/sin table. */
  ropeTable?: Tensor;
  /** Generation: attend against cached keys/values (batch 1) instead of within the batch. */
  cache?: AttentionCache;
}

/** A key/value cache: the batch's rows sit at positions past, past + 1, ... after the cached ones. */
export interface AttentionCache {
  readonly past: number;
  /** Store the rows' k and v ([rows, kv heads, head_dim]) for `layer` and write their attention into o. */
  attend(layer: number, q: Tensor, k: Tensor, v: Tensor, o: Tensor): void;
}

/** Tensors allocated for one purpose, released together. */
export class TensorGroup {
  private readonly tensors: Tensor[] = [];

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly prefix: string,
  ) {}

  f32(name: string, shape: readonly number[]): Tensor {
    return this.of('f32', name, shape);
  }

  of(dtype: 'f16' | 'f32', name: string, shape: readonly number[]): Tensor {
    const t = this.gpu.tensor(`${this.prefix}.${name}`, dtype, shape, 'activations');
    this.tensors.push(t);
    return t;
  }

  releaseAll(): void {
    for (const t of this.tensors.splice(0)) t.release();
  }
}

/** y [T, out] = x [T, in] . W (+ bias). */
export function forwardLinear(ctx: BlockContext, lin: ResolvedLinear, x: Tensor, y: Tensor): void {
  linearForward(ctx.gpu, lin.spec, lin.weight, x, y, lin.bias?.tensor);
}

/** dx [T, in] (+)= dy [T, out] . W^T. */
export function backwardLinearInput(
  ctx: BlockContext,
  lin: ResolvedLinear,
  dy: Tensor,
  dx: Tensor,
  accumulate = false,
): void {
  linearBackwardInput(ctx.gpu, lin.spec, lin.weight, dy, dx, accumulate);
}

/** Where the sink wants a parameter's gradient written, or undefined when it does not want it. */
function gradTargetOf(sink: GradientSink, p: ResolvedParameter): GradTarget | undefined {
  return sink.wants(p.spec) ? sink.gradTarget(p.spec) : undefined;
}

/**
 * A linear layer's gradients in the backward: its weight's (handed to the sink with X and dY) and, when
 * the layer has one, its bias's (the column sums of dY, or of `dyF32`: the same gradient before its cast
 * to f16 in mixed precision, where the block has it).
 */
export function linearGradients(
  ctx: BlockContext,
  sink: GradientSink,
  lin: ResolvedLinear,
  x: Tensor,
  dy: Tensor,
  dyF32?: Tensor,
): void {
  if (sink.wants(lin.spec)) sink.linear(lin.spec, x, dy);
  const target = lin.bias && gradTargetOf(sink, lin.bias);
  if (target) biasGrad(ctx.gpu, dyF32 ?? dy, target.tensor, { accumulate: target.accumulate });
}

/**
 * The matmul operand of a residual-stream gradient: itself in f32, an f16 copy in mixed precision (scaled
 * by the loss scale already; an overflow becomes inf, which the step's non-finite count sees), written
 * into `storage` when given (an earlier operand whose last reader is recorded).
 */
export function operandOf(
  ctx: BlockContext,
  g: TensorGroup,
  name: string,
  dy: Tensor,
  storage?: Tensor,
): Tensor {
  if (ctx.operand === dy.dtype) return dy;
  return cast(ctx.gpu, dy, ctx.operand, storage ?? g.of(ctx.operand, name, dy.shape));
}

/** A norm's forward (RMSNorm or LayerNorm, by the config): y, and the statistics the backward reads. */
export function normForward(
  ctx: BlockContext,
  norm: ResolvedNorm,
  a: { x: Tensor; y: Tensor; mean?: Tensor; rstd: Tensor },
): void {
  const eps = ctx.config.norm.eps;
  if (ctx.config.norm.kind === 'rmsnorm') {
    rmsNormForward(ctx.gpu, { x: a.x, weight: norm.weight.tensor, y: a.y, rstd: a.rstd, eps });
    return;
  }
  if (!a.mean || !norm.bias) throw new Error('LayerNorm needs a bias and a tensor for the mean');
  layerNormForward(ctx.gpu, {
    x: a.x,
    weight: norm.weight.tensor,
    bias: norm.bias.tensor,
    y: a.y,
    mean: a.mean,
    rstd: a.rstd,
    eps,
  });
}

/** What a norm's backward reads: the forward's input and statistics (mean: LayerNorm only). */
export interface NormBackwardInputs {
  dy: Tensor;
  x: Tensor;
  mean?: Tensor;
  rstd: Tensor;
  /** Written, or added to with accumulateDx (the residual stream's gradient). */
  dx: Tensor;
  accumulateDx: boolean;
}

/** A norm's backward (RMSNorm or LayerNorm, by the config): dx, and its weight's and bias's gradients. */
export function normGradients(
  ctx: BlockContext,
  sink: GradientSink,
  norm: ResolvedNorm,
  a: NormBackwardInputs,
): void {
  const w = gradTargetOf(sink, norm.weight);
  const b = norm.bias && gradTargetOf(sink, norm.bias);
  const common = {
    dy: a.dy,
    x: a.x,
    weight: norm.weight.tensor,
    rstd: a.rstd,
    dx: a.dx,
    accumulateDx: a.accumulateDx,
    ...(w && { dweight: w.tensor }),
    // weight and bias targets come from the same sink: they accumulate alike
    accumulateParams: w?.accumulate ?? b?.accumulate ?? false,
  };
  if (ctx.config.norm.kind === 'rmsnorm') {
    rmsNormBackward(ctx.gpu, common);
    return;
  }
  if (!a.mean) throw new Error('LayerNorm backward needs the mean saved by the forward');
  layerNormBackward(ctx.gpu, { ...common, mean: a.mean, ...(b && { dbias: b.tensor }) });
}

/** What the attention backward needs from a block's tape. */
export interface AttentionTape {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  lse: Tensor;
}

/**
 * What every block's forward keeps for its backward: the input, the first norm's output and statistics,
 * the attention's tensors, the residual stream after attention, the second norm's; all in `group`.
 */
export interface BlockTape extends AttentionTape {
  x: Tensor;
  xn1: Tensor;
  rstd1: Tensor;
  h: Tensor;
  xn2: Tensor;
  rstd2: Tensor;
  group: TensorGroup;
}

/** dq, dk, dv (shaped like q, k, v) from dO, in tensors of group `g`. */
export function attentionGradients(
  gpu: GpuRuntime,
  g: TensorGroup,
  tape: AttentionTape,
  dO: Tensor,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  // attention takes one dtype for all its tensors: the gradients are stored like q, k, v
  const dq = g.of(tape.q.dtype as 'f16' | 'f32', 'dq', tape.q.shape);
  const dk = g.of(tape.q.dtype as 'f16' | 'f32', 'dk', tape.k.shape);
  const dv = g.of(tape.q.dtype as 'f16' | 'f32', 'dv', tape.v.shape);
  const delta = g.f32('delta', tape.lse.shape);
  attentionBackward(gpu, {
    q: tape.q,
    k: tape.k,
    v: tape.v,
    o: tape.o,
    lse: tape.lse,
    dO,
    dq,
    dk,
    dv,
    delta,
  });
  return { dq, dk, dv };
}
