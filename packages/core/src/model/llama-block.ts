// One LLaMA decoder layer: pre-RMSNorm attention with RoPE and grouped-query heads, pre-RMSNorm SwiGLU MLP.
import {
  add,
  attentionForward,
  ropeBackward,
  ropeForward,
  swiglu,
  swigluBackward,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import {
  TensorGroup,
  attentionGradients,
  backwardLinearInput,
  forwardLinear,
  linearGradients,
  normForward,
  normGradients,
  operandOf,
  type BlockContext,
  type BlockTape,
} from './block-context.js';
import type { GradientSink } from './gradient-sink.js';

export interface LlamaTape extends BlockTape {
  gate: Tensor;
  up: Tensor;
  act: Tensor;
}

/**
 * Forward of layer `layer` on x [T, C]; returns the output [T, C] (caller owns) and the tape. The
 * residual stream (x, h, out) and the statistics are f32; what a matmul reads (the norms' outputs, q, k,
 * v, o, gate, up, act) is stored in the operand dtype (f16 in mixed precision).
 */
export function llamaBlockForward(
  ctx: BlockContext,
  layer: number,
  x: Tensor,
): { out: Tensor; tape: LlamaTape } {
  const { gpu, config: c, tokens: T, shape } = ctx;
  // resolved once per model from the parameter list
  const p = ctx.weights.block(layer);
  const g = new TensorGroup(gpu, `L${layer}`);
  const op = ctx.operand;
  const qw = c.numHeads * c.headDim;
  const kvw = c.numKeyValueHeads * c.headDim;
  const xn1 = g.of(op, 'xn1', [T, c.hiddenSize]);
  const rstd1 = g.f32('rstd1', [T]);
  normForward(ctx, p.norm('input_layernorm'), { x, y: xn1, rstd: rstd1 });
  const q = g.of(op, 'q', [shape.batch, shape.seqLen, c.numHeads, c.headDim]);
  const k = g.of(op, 'k', [shape.batch, shape.seqLen, c.numKeyValueHeads, c.headDim]);
  const v = g.of(op, 'v', [shape.batch, shape.seqLen, c.numKeyValueHeads, c.headDim]);
  forwardLinear(ctx, p.linear('q_proj'), xn1, q.view([T, qw]));
  forwardLinear(ctx, p.linear('k_proj'), xn1, k.view([T, kvw]));
  forwardLinear(ctx, p.linear('v_proj'), xn1, v.view([T, kvw]));
  ropeForward(gpu, {
    q: q.view([T, c.numHeads, c.headDim]),
    k: k.view([T, c.numKeyValueHeads, c.headDim]),
    table: ctx.ropeTable!,
    positions: { offset: ctx.cache?.past ?? 0, sequenceLength: shape.seqLen },
  });
  const o = g.of(op, 'o', [shape.batch, shape.seqLen, c.numHeads, c.headDim]);
  const lse = g.f32('lse', [shape.batch, c.numHeads, shape.seqLen]);
  if (ctx.cache) ctx.cache.attend(layer, q, k, v, o);
  else attentionForward(gpu, { q, k, v, o, lse });
  const h = g.f32('h', [T, c.hiddenSize]);
  forwardLinear(ctx, p.linear('o_proj'), o.view([T, qw]), h);
  add(gpu, h, x, h);
  const xn2 = g.of(op, 'xn2', [T, c.hiddenSize]);
  const rstd2 = g.f32('rstd2', [T]);
  normForward(ctx, p.norm('post_attention_layernorm'), { x: h, y: xn2, rstd: rstd2 });
  const gate = g.of(op, 'gate', [T, c.intermediateSize]);
  const up = g.of(op, 'up', [T, c.intermediateSize]);
  forwardLinear(ctx, p.linear('gate_proj'), xn2, gate);
  forwardLinear(ctx, p.linear('up_proj'), xn2, up);
  const act = g.of(op, 'act', [T, c.intermediateSize]);
  swiglu(gpu, gate, up, act);
  const out = gpu.tensor(`L${layer}.out`, 'f32', [T, c.hiddenSize], 'activations');
  forwardLinear(ctx, p.linear('down_proj'), act, out);
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
  // resolved once per model from the parameter list
  const p = ctx.weights.block(layer);
  const g = new TensorGroup(gpu, `L${layer}.bwd`);
  const op = ctx.operand;
  const qw = c.numHeads * c.headDim;
  const kvw = c.numKeyValueHeads * c.headDim;
  // MLP: out = h + down(swiglu(gate(xn2), up(xn2)))
  const dOutOp = operandOf(ctx, g, 'dOut', dOut);
  const dAct = g.of(op, 'dAct', [T, c.intermediateSize]);
  backwardLinearInput(ctx, p.linear('down_proj'), dOutOp, dAct);
  linearGradients(ctx, sink, p.linear('down_proj'), tape.act, dOutOp, dOut);
  // gate/up are dead after this: their storage takes dGate/dUp
  const { dGate, dUp } = swigluBackward(gpu, tape.gate, tape.up, dAct, { dGate: tape.gate, dUp: tape.up });
  const dXn2 = g.f32('dXn2', [T, c.hiddenSize]);
  backwardLinearInput(ctx, p.linear('gate_proj'), dGate, dXn2);
  backwardLinearInput(ctx, p.linear('up_proj'), dUp, dXn2, true);
  linearGradients(ctx, sink, p.linear('gate_proj'), tape.xn2, dGate);
  linearGradients(ctx, sink, p.linear('up_proj'), tape.xn2, dUp);
  // dH = dOut + norm backward (accumulated in place into dOut's storage)
  const dH = dOut;
  normGradients(ctx, sink, p.norm('post_attention_layernorm'), {
    dy: dXn2,
    x: tape.h,
    rstd: tape.rstd2,
    dx: dH,
    accumulateDx: true,
  });
  // attention: h = x + o_proj(attn(rope(q), rope(k), v))
  // dOut's operand copy is read by nothing after the MLP's gradients: dH's takes its storage
  const dHOp = operandOf(ctx, g, 'dH', dH, dOutOp);
  const dO = g.of(op, 'dO', [shape.batch, shape.seqLen, c.numHeads, c.headDim]);
  backwardLinearInput(ctx, p.linear('o_proj'), dHOp, dO.view([T, qw]));
  linearGradients(ctx, sink, p.linear('o_proj'), tape.o.view([T, qw]), dHOp, dH);
  const { dq, dk, dv } = attentionGradients(gpu, g, tape, dO);
  ropeBackward(gpu, {
    dq: dq.view([T, c.numHeads, c.headDim]),
    dk: dk.view([T, c.numKeyValueHeads, c.headDim]),
    table: ctx.ropeTable!,
    positions: { offset: 0, sequenceLength: shape.seqLen },
  });
  const dXn1 = g.f32('dXn1', [T, c.hiddenSize]);
  backwardLinearInput(ctx, p.linear('q_proj'), dq.view([T, qw]), dXn1);
  backwardLinearInput(ctx, p.linear('k_proj'), dk.view([T, kvw]), dXn1, true);
  backwardLinearInput(ctx, p.linear('v_proj'), dv.view([T, kvw]), dXn1, true);
  linearGradients(ctx, sink, p.linear('q_proj'), tape.xn1, dq.view([T, qw]));
  linearGradients(ctx, sink, p.linear('k_proj'), tape.xn1, dk.view([T, kvw]));
  linearGradients(ctx, sink, p.linear('v_proj'), tape.xn1, dv.view([T, kvw]));
  normGradients(ctx, sink, p.norm('input_layernorm'), {
    dy: dXn1,
    x: tape.x,
    rstd: tape.rstd1,
    dx: dH,
    accumulateDx: true,
  });
  g.releaseAll();
  tape.group.releaseAll();
  return dH;
}
