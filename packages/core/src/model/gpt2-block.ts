// One GPT-2 block: pre-LayerNorm attention with a fused q/k/v projection (Conv1D, stored in x out) and a
// gelu_new MLP.
import {
  add,
  attentionForward,
  copyColumns,
  gelu,
  geluBackward,
  layerNormBackward,
  layerNormForward,
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
import type { GradientSink, GradTarget } from './gradient-sink.js';
import { linearBackwardInput, linearForward } from './linear.js';

export interface Gpt2Tape {
  x: Tensor;
  xn1: Tensor;
  mean1: Tensor;
  rstd1: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  lse: Tensor;
  h: Tensor;
  xn2: Tensor;
  mean2: Tensor;
  rstd2: Tensor;
  fc: Tensor;
  act: Tensor;
  group: TensorGroup;
}

const names = (layer: number) => {
  const p = `transformer.h.${layer}`;
  return {
    ln1: `${p}.ln_1`,
    ln2: `${p}.ln_2`,
    attn: `${p}.attn.c_attn`,
    proj: `${p}.attn.c_proj`,
    fc: `${p}.mlp.c_fc`,
    mproj: `${p}.mlp.c_proj`,
  };
};

export function gpt2BlockForward(
  ctx: BlockContext,
  layer: number,
  x: Tensor,
): { out: Tensor; tape: Gpt2Tape } {
  const { gpu, config: c, tokens: T, shape } = ctx;
  const n = names(layer);
  const C = c.hiddenSize;
  const g = new TensorGroup(gpu, `L${layer}`);
  const xn1 = g.f32('xn1', [T, C]);
  const mean1 = g.f32('mean1', [T]);
  const rstd1 = g.f32('rstd1', [T]);
  layerNormForward(gpu, {
    x,
    weight: param(ctx, `${n.ln1}.weight`),
    bias: param(ctx, `${n.ln1}.bias`),
    y: xn1,
    mean: mean1,
    rstd: rstd1,
    eps: c.norm.eps,
  });
  const qkv = g.f32('qkv', [T, 3 * C]);
  linearForward(
    gpu,
    linearSpec(ctx, `${n.attn}.weight`),
    param(ctx, `${n.attn}.weight`),
    xn1,
    qkv,
    param(ctx, `${n.attn}.bias`),
  );
  const heads = [shape.batch, shape.seqLen, c.numHeads, c.headDim];
  const q = g.f32('q', heads);
  const k = g.f32('k', heads);
  const v = g.f32('v', heads);
  for (const [i, t] of [q, k, v].entries())
    copyColumns(gpu, { src: qkv, srcCol: i * C, dst: t.view([T, C]), dstCol: 0, width: C });
  const o = g.f32('o', heads);
  const lse = g.f32('lse', [shape.batch, c.numHeads, shape.seqLen]);
  if (ctx.cache) ctx.cache.attend(layer, q, k, v, o);
  else attentionForward(gpu, { q, k, v, o, lse });
  const h = g.f32('h', [T, C]);
  linearForward(
    gpu,
    linearSpec(ctx, `${n.proj}.weight`),
    param(ctx, `${n.proj}.weight`),
    o.view([T, C]),
    h,
    param(ctx, `${n.proj}.bias`),
  );
  add(gpu, h, x, h);
  const xn2 = g.f32('xn2', [T, C]);
  const mean2 = g.f32('mean2', [T]);
  const rstd2 = g.f32('rstd2', [T]);
  layerNormForward(gpu, {
    x: h,
    weight: param(ctx, `${n.ln2}.weight`),
    bias: param(ctx, `${n.ln2}.bias`),
    y: xn2,
    mean: mean2,
    rstd: rstd2,
    eps: c.norm.eps,
  });
  const fc = g.f32('fc', [T, c.intermediateSize]);
  linearForward(
    gpu,
    linearSpec(ctx, `${n.fc}.weight`),
    param(ctx, `${n.fc}.weight`),
    xn2,
    fc,
    param(ctx, `${n.fc}.bias`),
  );
  const act = g.f32('act', [T, c.intermediateSize]);
  gelu(gpu, fc, act);
  const out = gpu.tensor(`L${layer}.out`, 'f32', [T, C], 'activations');
  linearForward(
    gpu,
    linearSpec(ctx, `${n.mproj}.weight`),
    param(ctx, `${n.mproj}.weight`),
    act,
    out,
    param(ctx, `${n.mproj}.bias`),
  );
  add(gpu, out, h, out);
  // qkv is only needed to split: free it now (the tape keeps q, k, v)
  return { out, tape: { x, xn1, mean1, rstd1, q, k, v, o, lse, h, xn2, mean2, rstd2, fc, act, group: g } };
}

function target(
  ctx: BlockContext,
  sink: GradientSink,
  name: string,
): { spec: ReturnType<BlockContext['weights']['spec']>; t?: GradTarget } {
  const spec = ctx.weights.spec(name);
  return sink.wants(spec) ? { spec, t: sink.gradTarget(spec) } : { spec };
}

export function gpt2BlockBackward(
  ctx: BlockContext,
  layer: number,
  tape: Gpt2Tape,
  dOut: Tensor,
  sink: GradientSink,
): Tensor {
  const { gpu, config: c, tokens: T, shape } = ctx;
  const n = names(layer);
  const C = c.hiddenSize;
  const g = new TensorGroup(gpu, `L${layer}.bwd`);
  const lin = (base: string, x: Tensor, dy: Tensor) => linearGradients(ctx, sink, base, x, dy);
  const norm = (ln: string, dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, dx: Tensor) => {
    const w = target(ctx, sink, `${ln}.weight`);
    const b = target(ctx, sink, `${ln}.bias`);
    layerNormBackward(gpu, {
      dy,
      x,
      weight: param(ctx, `${ln}.weight`),
      mean,
      rstd,
      dx,
      accumulateDx: true,
      ...(w.t && { dweight: w.t.tensor }),
      ...(b.t && { dbias: b.t.tensor }),
      // weight and bias targets come from the same sink: they accumulate alike
      accumulateParams: w.t?.accumulate ?? b.t?.accumulate ?? false,
    });
    if (w.t) sink.gradReady(w.spec);
    if (b.t) sink.gradReady(b.spec);
  };
  // MLP: out = h + mproj(gelu(fc(xn2)))
  const dAct = g.f32('dAct', [T, c.intermediateSize]);
  linearBackwardInput(gpu, linearSpec(ctx, `${n.mproj}.weight`), param(ctx, `${n.mproj}.weight`), dOut, dAct);
  lin(n.mproj, tape.act, dOut);
  const dFc = geluBackward(gpu, tape.fc, dAct, tape.act); // act is dead: reuse its storage
  const dXn2 = g.f32('dXn2', [T, C]);
  linearBackwardInput(gpu, linearSpec(ctx, `${n.fc}.weight`), param(ctx, `${n.fc}.weight`), dFc, dXn2);
  lin(n.fc, tape.xn2, dFc);
  const dH = dOut;
  norm(`${n.ln2}`, dXn2, tape.h, tape.mean2, tape.rstd2, dH);
  // attention
  const heads = [shape.batch, shape.seqLen, c.numHeads, c.headDim];
  const dO = g.f32('dO', heads);
  linearBackwardInput(
    gpu,
    linearSpec(ctx, `${n.proj}.weight`),
    param(ctx, `${n.proj}.weight`),
    dH,
    dO.view([T, C]),
  );
  lin(n.proj, tape.o.view([T, C]), dH);
  const { dq, dk, dv } = attentionGradients(gpu, g, tape, dO);
  const dQkv = g.f32('dQkv', [T, 3 * C]);
  for (const [i, t] of [dq, dk, dv].entries())
    copyColumns(gpu, { src: t.view([T, C]), srcCol: 0, dst: dQkv, dstCol: i * C, width: C });
  const dXn1 = g.f32('dXn1', [T, C]);
  linearBackwardInput(gpu, linearSpec(ctx, `${n.attn}.weight`), param(ctx, `${n.attn}.weight`), dQkv, dXn1);
  lin(n.attn, tape.xn1, dQkv);
  norm(`${n.ln1}`, dXn1, tape.x, tape.mean1, tape.rstd1, dH);
  sink.blockDone?.(layer);
  g.releaseAll();
  tape.group.releaseAll();
  return dH;
}
