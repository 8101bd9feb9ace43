// One GPT-2 block: pre-LayerNorm attention with a fused q/k/v projection (Conv1D, stored in x out) and a
// gelu_new MLP.
import { add, attentionForward, copyColumns, gelu, geluBackward, type Tensor } from '@lsp-offload/gpu-dawn';
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

export interface Gpt2Tape extends BlockTape {
  /** LayerNorm's means (the backward reads them beside rstd). */
  mean1: Tensor;
  mean2: Tensor;
  fc: Tensor;
  act: Tensor;
}

export function gpt2BlockForward(
  ctx: BlockContext,
  layer: number,
  x: Tensor,
): { out: Tensor; tape: Gpt2Tape } {
  const { gpu, config: c, tokens: T, shape } = ctx;
  // resolved once per model from the parameter list
  const p = ctx.weights.block(layer);
  const C = c.hiddenSize;
  const g = new TensorGroup(gpu, `L${layer}`);
  // matmul operands in the operand dtype (f16 in mixed precision); residual stream and statistics f32
  const op = ctx.operand;
  const xn1 = g.of(op, 'xn1', [T, C]);
  const mean1 = g.f32('mean1', [T]);
  const rstd1 = g.f32('rstd1', [T]);
  normForward(ctx, p.norm('ln_1'), { x, y: xn1, mean: mean1, rstd: rstd1 });
  const qkv = g.of(op, 'qkv', [T, 3 * C]);
  forwardLinear(ctx, p.linear('attn.c_attn'), xn1, qkv);
  const heads = [shape.batch, shape.seqLen, c.numHeads, c.headDim];
  const q = g.of(op, 'q', heads);
  const k = g.of(op, 'k', heads);
  const v = g.of(op, 'v', heads);
  for (const [i, t] of [q, k, v].entries())
    copyColumns(gpu, { src: qkv, srcCol: i * C, dst: t.view([T, C]), dstCol: 0, width: C });
  const o = g.of(op, 'o', heads);
  const lse = g.f32('lse', [shape.batch, c.numHeads, shape.seqLen]);
  if (ctx.cache) ctx.cache.attend(layer, q, k, v, o);
  else attentionForward(gpu, { q, k, v, o, lse });
  const h = g.f32('h', [T, C]);
  forwardLinear(ctx, p.linear('attn.c_proj'), o.view([T, C]), h);
  add(gpu, h, x, h);
  const xn2 = g.of(op, 'xn2', [T, C]);
  const mean2 = g.f32('mean2', [T]);
  const rstd2 = g.f32('rstd2', [T]);
  normForward(ctx, p.norm('ln_2'), { x: h, y: xn2, mean: mean2, rstd: rstd2 });
  const fc = g.of(op, 'fc', [T, c.intermediateSize]);
  forwardLinear(ctx, p.linear('mlp.c_fc'), xn2, fc);
  const act = g.of(op, 'act', [T, c.intermediateSize]);
  gelu(gpu, fc, act);
  const out = gpu.tensor(`L${layer}.out`, 'f32', [T, C], 'activations');
  forwardLinear(ctx, p.linear('mlp.c_proj'), act, out);
  add(gpu, out, h, out);
  // qkv is only needed to split: free it now (the tape keeps q, k, v)
  return { out, tape: { x, xn1, mean1, rstd1, q, k, v, o, lse, h, xn2, mean2, rstd2, fc, act, group: g } };
}

export function gpt2BlockBackward(
  ctx: BlockContext,
  layer: number,
  tape: Gpt2Tape,
  dOut: Tensor,
  sink: GradientSink,
): Tensor {
  const { gpu, config: c, tokens: T, shape } = ctx;
  // resolved once per model from the parameter list
  const p = ctx.weights.block(layer);
  const C = c.hiddenSize;
  const g = new TensorGroup(gpu, `L${layer}.bwd`);
  const op = ctx.operand;
  // MLP: out = h + mproj(gelu(fc(xn2)))
  const dOutOp = operandOf(ctx, g, 'dOut', dOut);
  const dAct = g.of(op, 'dAct', [T, c.intermediateSize]);
  backwardLinearInput(ctx, p.linear('mlp.c_proj'), dOutOp, dAct);
  linearGradients(ctx, sink, p.linear('mlp.c_proj'), tape.act, dOutOp, dOut);
  const dFc = geluBackward(gpu, tape.fc, dAct, tape.act); // act is dead: reuse its storage
  const dXn2 = g.f32('dXn2', [T, C]);
  backwardLinearInput(ctx, p.linear('mlp.c_fc'), dFc, dXn2);
  linearGradients(ctx, sink, p.linear('mlp.c_fc'), tape.xn2, dFc);
  const dH = dOut;
  normGradients(ctx, sink, p.norm('ln_2'), {
    dy: dXn2,
    x: tape.h,
    mean: tape.mean2,
    rstd: tape.rstd2,
    dx: dH,
    accumulateDx: true,
  });
  // attention
  const heads = [shape.batch, shape.seqLen, c.numHeads, c.headDim];
  // dOut's operand copy is read by nothing after the MLP's gradients: dH's takes its storage
  const dHOp = operandOf(ctx, g, 'dH', dH, dOutOp);
  const dO = g.of(op, 'dO', heads);
  backwardLinearInput(ctx, p.linear('attn.c_proj'), dHOp, dO.view([T, C]));
  linearGradients(ctx, sink, p.linear('attn.c_proj'), tape.o.view([T, C]), dHOp, dH);
  const { dq, dk, dv } = attentionGradients(gpu, g, tape, dO);
  const dQkv = g.of(op, 'dQkv', [T, 3 * C]);
  for (const [i, t] of [dq, dk, dv].entries())
    copyColumns(gpu, { src: t.view([T, C]), srcCol: 0, dst: dQkv, dstCol: i * C, width: C });
  const dXn1 = g.f32('dXn1', [T, C]);
  backwardLinearInput(ctx, p.linear('attn.c_attn'), dQkv, dXn1);
  linearGradients(ctx, sink, p.linear('attn.c_attn'), tape.xn1, dQkv);
  normGradients(ctx, sink, p.norm('ln_1'), {
    dy: dXn1,
    x: tape.x,
    mean: tape.mean1,
    rstd: tape.rstd1,
    dx: dH,
    accumulateDx: true,
  });
  g.releaseAll();
  tape.group.releaseAll();
  return dH;
}
