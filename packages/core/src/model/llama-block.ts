// One LLaMA decoder layer: pre-RMSNorm attention with RoPE and grouped-query heads, pre-RMSNorm SwiGLU MLP.
import {
  add,
  attentionForward,
  rmsNormBackward,
  rmsNormForward,
  ropeBackward,
  ropeForward,
  swiglu,
  swigluBackward,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import {
  TensorGroup,
  attentionGradients,
  linearGradients,
  linearSpec,
  param,
  type BlockContext,
} from './block-context.js';
import type { GradientSink } from './gradient-sink.js';
import { linearBackwardInput, linearForward } from './linear.js';

export interface LlamaTape {
  x: Tensor;
  xn1: Tensor;
  rstd1: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  lse: Tensor;
  h: Tensor;
  xn2: Tensor;
  rstd2: Tensor;
  gate: Tensor;
  up: Tensor;
  act: Tensor;
  group: TensorGroup;
}

const names = (layer: number) => {
  const p = `model.layers.${layer}`;
  return {
    inNorm: `${p}.input_layernorm.weight`,
    postNorm: `${p}.post_attention_layernorm.weight`,
    q: `${p}.self_attn.q_proj`,
    k: `${p}.self_attn.k_proj`,
    v: `${p}.self_attn.v_proj`,
    o: `${p}.self_attn.o_proj`,
    gate: `${p}.mlp.gate_proj`,
    up: `${p}.mlp.up_proj`,
    down: `${p}.mlp.down_proj`,
  };
};

function bias(ctx: BlockContext, linear: string): Tensor | undefined {
  const name = `${linear}.bias`;
  return ctx.weights.has(name) ? param(ctx, name) : undefined;
}

/** Forward of layer `layer` on x [T, C]; returns the output [T, C] (caller owns) and the tape. */
export function llamaBlockForward(
  ctx: BlockContext,
  layer: number,
  x: Tensor,
): { out: Tensor; tape: LlamaTape } {
  const { gpu, config: c, tokens: T, shape } = ctx;
  const n = names(layer);
  const g = new TensorGroup(gpu, `L${layer}`);
  const qw = c.numHeads * c.headDim;
  const kvw = c.numKeyValueHeads * c.headDim;
  const xn1 = g.f32('xn1', [T, c.hiddenSize]);
  const rstd1 = g.f32('rstd1', [T]);
  rmsNormForward(gpu, { x, weight: param(ctx, n.inNorm), y: xn1, rstd: rstd1, eps: c.norm.eps });
  const q = g.f32('q', [shape.batch, shape.seqLen, c.numHeads, c.headDim]);
  const k = g.f32('k', [shape.batch, shape.seqLen, c.numKeyValueHeads, c.headDim]);
  const v = g.f32('v', [shape.batch, shape.seqLen, c.numKeyValueHeads, c.headDim]);
  linearForward(
    gpu,
    linearSpec(ctx, `${n.q}.weight`),
    param(ctx, `${n.q}.weight`),
    xn1,
    q.view([T, qw]),
    bias(ctx, n.q),
  );
  linearForward(
    gpu,
    linearSpec(ctx, `${n.k}.weight`),
    param(ctx, `${n.k}.weight`),
    xn1,
    k.view([T, kvw]),
    bias(ctx, n.k),
  );
  linearForward(
    gpu,
    linearSpec(ctx, `${n.v}.weight`),
    param(ctx, `${n.v}.weight`),
    xn1,
    v.view([T, kvw]),
    bias(ctx, n.v),
  );
  ropeForward(gpu, {
    q: q.view([T, c.numHeads, c.headDim]),
    k: k.view([T, c.numKeyValueHeads, c.headDim]),
    table: ctx.ropeTable!,
    positions: { offset: ctx.cache?.past ?? 0, sequenceLength: shape.seqLen },
  });
  const o = g.f32('o', [shape.batch, shape.seqLen, c.numHeads, c.headDim]);
  const lse = g.f32('lse', [shape.batch, c.numHeads, shape.seqLen]);
  if (ctx.cache) ctx.cache.attend(layer, q, k, v, o);
  else attentionForward(gpu, { q, k, v, o, lse });
  const h = g.f32('h', [T, c.hiddenSize]);
  linearForward(
    gpu,
    linearSpec(ctx, `${n.o}.weight`),
    param(ctx, `${n.o}.weight`),
    o.view([T, qw]),
    h,
    bias(ctx, n.o),
  );
  add(gpu, h, x, h);
  const xn2 = g.f32('xn2', [T, c.hiddenSize]);
  const rstd2 = g.f32('rstd2', [T]);
  rmsNormForward(gpu, { x: h, weight: param(ctx, n.postNorm), y: xn2, rstd: rstd2, eps: c.norm.eps });
  const gate = g.f32('gate', [T, c.intermediateSize]);
  const up = g.f32('up', [T, c.intermediateSize]);
  linearForward(
    gpu,
    linearSpec(ctx, `${n.gate}.weight`),
    param(ctx, `${n.gate}.weight`),
    xn2,
    gate,
    bias(ctx, n.gate),
  );
  linearForward(
    gpu,
    linearSpec(ctx, `${n.up}.weight`),
    param(ctx, `${n.up}.weight`),
    xn2,
    up,
    bias(ctx, n.up),
  );
  const act = g.f32('act', [T, c.intermediateSize]);
  swiglu(gpu, gate, up, act);
  const out = gpu.tensor(`L${layer}.out`, 'f32', [T, c.hiddenSize], 'activations');
  linearForward(
    gpu,
    linearSpec(ctx, `${n.down}.weight`),
    param(ctx, `${n.down}.weight`),
    act,
    out,
    bias(ctx, n.down),
  );
  add(gpu, out, h, out);
  return { out, tape: { x, xn1, rstd1, q, k, v, o, lse, h, xn2, rstd2, gate, up, act, group: g } };
}

/**
 * Backward of the layer given dOut [T, C] (consumed: it becomes dX and is returned). Linear gradients go
 * to the sink as soon as their X and dY exist; the tape is released at the end.
 */
export function llamaBlockBackward(
  ctx: BlockContext,
  layer: number,
  tape: LlamaTape,
  dOut: Tensor,
  sink: GradientSink,
): Tensor {
  const { gpu, config: c, tokens: T, shape } = ctx;
  const n = names(layer);
  const g = new TensorGroup(gpu, `L${layer}.bwd`);
  const qw = c.numHeads * c.headDim;
  const kvw = c.numKeyValueHeads * c.headDim;
  const lin = (base: string, x: Tensor, dy: Tensor) => linearGradients(ctx, sink, base, x, dy);
  // MLP: out = h + down(swiglu(gate(xn2), up(xn2)))
  const dAct = g.f32('dAct', [T, c.intermediateSize]);
  linearBackwardInput(gpu, linearSpec(ctx, `${n.down}.weight`), param(ctx, `${n.down}.weight`), dOut, dAct);
  lin(n.down, tape.act, dOut);
  // gate/up are dead after this: their storage takes dGate/dUp
  const { dGate, dUp } = swigluBackward(gpu, tape.gate, tape.up, dAct, { dGate: tape.gate, dUp: tape.up });
  const dXn2 = g.f32('dXn2', [T, c.hiddenSize]);
  linearBackwardInput(gpu, linearSpec(ctx, `${n.gate}.weight`), param(ctx, `${n.gate}.weight`), dGate, dXn2);
  linearBackwardInput(gpu, linearSpec(ctx, `${n.up}.weight`), param(ctx, `${n.up}.weight`), dUp, dXn2, true);
  lin(n.gate, tape.xn2, dGate);
  lin(n.up, tape.xn2, dUp);
  // dH = dOut + norm backward (accumulated in place into dOut's storage)
  const dH = dOut;
  const postSpec = ctx.weights.spec(n.postNorm);
  const postTarget = sink.wants(postSpec) ? sink.gradTarget(postSpec) : undefined;
  rmsNormBackward(gpu, {
    dy: dXn2,
    x: tape.h,
    weight: param(ctx, n.postNorm),
    rstd: tape.rstd2,
    dx: dH,
    accumulateDx: true,
    ...(postTarget && { dweight: postTarget.tensor, accumulateParams: postTarget.accumulate }),
  });
  if (postTarget) sink.gradReady(postSpec);
  // attention: h = x + o_proj(attn(rope(q), rope(k), v))
  const dO = g.f32('dO', [shape.batch, shape.seqLen, c.numHeads, c.headDim]);
  linearBackwardInput(
    gpu,
    linearSpec(ctx, `${n.o}.weight`),
    param(ctx, `${n.o}.weight`),
    dH,
    dO.view([T, qw]),
  );
  lin(n.o, tape.o.view([T, qw]), dH);
  const { dq, dk, dv } = attentionGradients(gpu, g, tape, dO);
  ropeBackward(gpu, {
    dq: dq.view([T, c.numHeads, c.headDim]),
    dk: dk.view([T, c.numKeyValueHeads, c.headDim]),
    table: ctx.ropeTable!,
    positions: { offset: 0, sequenceLength: shape.seqLen },
  });
  const dXn1 = g.f32('dXn1', [T, c.hiddenSize]);
  linearBackwardInput(
    gpu,
    linearSpec(ctx, `${n.q}.weight`),
    param(ctx, `${n.q}.weight`),
    dq.view([T, qw]),
    dXn1,
  );
  linearBackwardInput(
    gpu,
    linearSpec(ctx, `${n.k}.weight`),
    param(ctx, `${n.k}.weight`),
    dk.view([T, kvw]),
    dXn1,
    true,
  );
  linearBackwardInput(
    gpu,
    linearSpec(ctx, `${n.v}.weight`),
    param(ctx, `${n.v}.weight`),
    dv.view([T, kvw]),
    dXn1,
    true,
  );
  lin(n.q, tape.xn1, dq.view([T, qw]));
  lin(n.k, tape.xn1, dk.view([T, kvw]));
  lin(n.v, tape.xn1, dv.view([T, kvw]));
  const inSpec = ctx.weights.spec(n.inNorm);
  const inTarget = sink.wants(inSpec) ? sink.gradTarget(inSpec) : undefined;
  rmsNormBackward(gpu, {
    dy: dXn1,
    x: tape.x,
    weight: param(ctx, n.inNorm),
    rstd: tape.rstd1,
    dx: dH,
    accumulateDx: true,
    ...(inTarget && { dweight: inTarget.tensor, accumulateParams: inTarget.accumulate }),
  });
  if (inTarget) sink.gradReady(inSpec);
  sink.blockDone?.(layer);
  g.releaseAll();
  tape.group.releaseAll();
  return dH;
}
