// What a transformer block needs to run: the GPU, the config, the weights, the batch geometry.
import { attentionBackward, biasGrad, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import type { LinearWeightSpec, ModelConfig, ParameterSpec } from '../hf/index.js';
import type { GradientSink } from './gradient-sink.js';
import type { ModelWeights } from './weights.js';

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
    const t = this.gpu.tensor(`${this.prefix}.${name}`, 'f32', shape, 'activations');
    this.tensors.push(t);
    return t;
  }

  releaseAll(): void {
    for (const t of this.tensors.splice(0)) t.release();
  }
}

export function param(ctx: BlockContext, name: string): Tensor {
  return ctx.weights.get(name);
}

export function linearSpec(ctx: BlockContext, name: string): LinearWeightSpec {
  const s = ctx.weights.spec(name);
  if (s.role !== 'linear') throw new Error(`${name} is not a linear weight`);
  return s;
}

/** Write a non-linear parameter's gradient through the sink when it is wanted. */
export function withGradTarget(
  ctx: BlockContext,
  sink: GradientSink,
  name: string,
  write: (target: Tensor, accumulate: boolean) => void,
): void {
  const spec: ParameterSpec = ctx.weights.spec(name);
  if (!sink.wants(spec)) return;
  const target = sink.gradTarget(spec);
  write(target.tensor, target.accumulate);
  sink.gradReady(spec);
}

/**
 * A linear layer's gradients in the backward: its weight's (handed to the sink with X and dY) and, when
 * the layer has one, its bias's (the column sums of dY).
 */
export function linearGradients(
  ctx: BlockContext,
  sink: GradientSink,
  base: string,
  x: Tensor,
  dy: Tensor,
): void {
  const spec = linearSpec(ctx, `${base}.weight`);
  if (sink.wants(spec)) sink.linear(spec, x, dy);
  if (ctx.weights.has(`${base}.bias`)) {
    withGradTarget(ctx, sink, `${base}.bias`, (t, accumulate) => biasGrad(ctx.gpu, dy, t, { accumulate }));
  }
}

/** What the attention backward needs from a block's tape. */
export interface AttentionTape {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  lse: Tensor;
}

/** dq, dk, dv (shaped like q, k, v) from dO, in tensors of group `g`. */
export function attentionGradients(
  gpu: GpuRuntime,
  g: TensorGroup,
  tape: AttentionTape,
  dO: Tensor,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const dq = g.f32('dq', tape.q.shape);
  const dk = g.f32('dk', tape.k.shape);
  const dv = g.f32('dv', tape.v.shape);
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
