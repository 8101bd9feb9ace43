// The whole causal LM on the GPU: embeddings, blocks (LLaMA or GPT-2), final norm, a chunked LM head +
// cross-entropy (the T x vocab logits never exist at once), and the backward with optional gradient
// checkpointing (only block inputs are kept; each block is recomputed right before its backward). In mixed
// precision the residual stream stays f32 through the forward and the backward, but the block inputs
// checkpointing keeps are f16 copies (half the memory that grows with depth; the recompute reads them
// back into f32; fixture gradients are as accurate as with f32 copies, hf-model-fixtures.test.ts).
import {
  Tensor,
  createRopeTable,
  crossEntropyBackward,
  crossEntropyForward,
  embeddingBackward,
  embeddingForward,
  addScaled,
  cast,
  type GpuRuntime,
  type GpuScalar,
} from '@lsp-offload/gpu-dawn';
import type { ModelConfig } from '../hf/index.js';
import {
  normForward,
  normGradients,
  type AttentionCache,
  type BlockContext,
  type BatchShape,
} from './block-context.js';
import { gpt2BlockBackward, gpt2BlockForward, type Gpt2Tape } from './gpt2-block.js';
import type { GradientSink } from './gradient-sink.js';
import { headForward, headInputGradient, headWeightGradient, lossChunkRows } from './lm-head.js';
import { llamaBlockBackward, llamaBlockForward, type LlamaTape } from './llama-block.js';
import type { ModelWeights } from './weights.js';
import { operandDtype, type Precision } from './precision.js';

export interface TransformerOptions {
  /** Keep only block inputs in the forward and recompute each block in the backward. */
  checkpointing: boolean;
  /** Tokens per LM-head/loss chunk (bounds the logits buffer to chunk x vocab floats). */
  lossChunkTokens?: number;
  /** f32 (default) or mixed: f16 matmul operands, f32 residual stream, statistics, logits and loss. */
  precision?: Precision;
}

export interface BackwardOptions {
  /**
   * Multiply the loss gradient by this GPU scalar (a dynamic loss scale): every gradient the backward
   * produces is scaled by it, so small f16 values survive; the optimizer divides it out.
   */
  lossScale?: GpuScalar;
}

export interface TokenBatch extends BatchShape {
  /** [batch * seqLen] token ids. */
  inputIds: Int32Array;
  /** [batch * seqLen] labels, NOT shifted (HF semantics: position t is scored against labels[t + 1]); -100 ignored. */
  labels: Int32Array;
}

export interface StepHooks {
  /** Right before block `layer`'s forward (deferred updates are applied here, never after). */
  beforeBlockForward?(layer: number): void | Promise<void>;
  /** Right after block `layer`'s backward is recorded (the schedule submits and applies ready updates). */
  afterBlockBackward?(layer: number): void | Promise<void>;
  /** Before the embedding forward, i.e. before anything of this step is recorded. */
  beforeForward?(): void | Promise<void>;
  /** Right before the final norm and LM head forward. */
  beforeHeadForward?(): void | Promise<void>;
}

export interface LossResult {
  /** f32 [1] on the GPU: mean cross-entropy over kept tokens. */
  loss: Tensor;
  /** Tokens that count in the loss (known on the host from the labels). */
  keptTokens: number;
}

type Tape = LlamaTape | Gpt2Tape;

/** HF shift: target[t] = labels[t + 1] within each sequence, -100 at each sequence's last position. */
export function shiftLabels(labels: Int32Array, batch: number, seqLen: number): Int32Array {
  if (labels.length !== batch * seqLen)
    throw new Error(`labels has ${labels.length} entries, want ${batch} x ${seqLen}`);
  const out = new Int32Array(labels.length).fill(-100);
  for (let b = 0; b < batch; b++)
    for (let t = 0; t + 1 < seqLen; t++) out[b * seqLen + t] = labels[b * seqLen + t + 1]!;
  return out;
}

export class Transformer {
  readonly config: ModelConfig;
  private readonly ropeTable: Tensor | undefined;
  private readonly chunkTokens: number;

  constructor(
    readonly gpu: GpuRuntime,
    readonly weights: ModelWeights,
    readonly options: TransformerOptions,
  ) {
    this.config = weights.config;
    const c = this.config;
    this.ropeTable =
      c.positions.kind === 'rope'
        ? createRopeTable(gpu, { headDim: c.headDim, maxPositions: c.maxPositions, theta: c.positions.theta })
        : undefined;
    // a multiple of 64 tokens (chunk offsets of the i32 targets stay 256-byte aligned), within a binding
    this.chunkTokens = lossChunkRows(options.lossChunkTokens ?? 1024, c.vocabSize, gpu.maxBindingBytes);
  }

  /** Names of the parameters outside the blocks (from the parameter list). */
  get names(): {
    embed: string;
    positions?: string;
    finalNorm: string;
    finalNormBias?: string;
    lmHead: string;
  } {
    const o = this.weights.outer;
    return {
      embed: o.embed.spec.name,
      ...(o.positions && { positions: o.positions.spec.name }),
      finalNorm: o.finalNorm.weight.spec.name,
      ...(o.finalNorm.bias && { finalNormBias: o.finalNorm.bias.spec.name }),
      lmHead: o.lmHead.spec.name,
    };
  }

  /** Forward + loss + backward of one batch, recorded on the GPU; resolves when everything is recorded. */
  trainStep(
    batch: TokenBatch,
    sink: GradientSink,
    hooks: StepHooks = {},
    backward: BackwardOptions = {},
  ): Promise<LossResult> {
    return this.run(batch, sink, hooks, backward);
  }

  get precision(): Precision {
    return this.options.precision ?? 'f32';
  }

  /** Forward + loss only (evaluation). */
  evalLoss(batch: TokenBatch, hooks: StepHooks = {}): Promise<LossResult> {
    return this.run(batch, undefined, hooks);
  }

  /** Forward to logits [T, vocab] f32 (the caller releases them). */
  async logits(batch: TokenBatch, hooks: StepHooks = {}): Promise<Tensor> {
    const ctx = this.context(batch);
    await hooks.beforeForward?.();
    const { ids, release } = this.uploadInputs(batch);
    const x = this.embed(ctx, ids);
    const final = (await this.blocksForward(ctx, x, false, hooks)).final;
    await hooks.beforeHeadForward?.();
    const xf = this.finalNorm(ctx, final);
    const logits = this.gpu.tensor('logits', 'f32', [ctx.tokens, this.config.vocabSize], 'activations');
    headForward(this.gpu, {
      m: ctx.tokens,
      x: { tensor: xf.y },
      w: this.weights.outer.lmHead.tensor,
      out: logits,
      label: 'lm_head forward',
    });
    xf.release();
    final.release();
    release();
    return logits;
  }

  /**
   * Generation: the tokens `ids` of one sequence, at the positions after those in `cache`, through every
   * block with attention against the cache (which takes their keys and values); returns the logits of
   * the last token, [1, vocab] f32 (the caller releases them).
   */
  async nextTokenLogits(ids: Int32Array, cache: AttentionCache): Promise<Tensor> {
    const batch: TokenBatch = { batch: 1, seqLen: ids.length, inputIds: ids, labels: ids };
    const ctx: BlockContext = { ...this.context(batch), cache };
    const c = this.config;
    const { ids: idsTensor, release } = this.uploadInputs(batch);
    const final = (await this.blocksForward(ctx, this.embed(ctx, idsTensor), false, {})).final;
    const xf = this.finalNorm(ctx, final);
    const logits = this.gpu.tensor('logits.last', 'f32', [1, c.vocabSize], 'activations');
    headForward(this.gpu, {
      m: 1,
      x: { tensor: xf.y, offset: (ids.length - 1) * c.hiddenSize },
      w: this.weights.outer.lmHead.tensor,
      out: logits,
      label: 'lm_head forward (last token)',
    });
    xf.release();
    final.release();
    release();
    return logits;
  }

  release(): void {
    this.ropeTable?.release();
  }

  // ---- internals ---------------------------------------------------------------------------------

  private context(batch: BatchShape): BlockContext {
    const tokens = batch.batch * batch.seqLen;
    if (batch.seqLen > this.config.maxPositions) {
      throw new Error(
        `sequence length ${batch.seqLen} exceeds the model's ${this.config.maxPositions} positions`,
      );
    }
    return {
      gpu: this.gpu,
      config: this.config,
      weights: this.weights,
      shape: { batch: batch.batch, seqLen: batch.seqLen },
      tokens,
      precision: this.precision,
      operand: operandDtype(this.precision),
      ...(this.ropeTable && { ropeTable: this.ropeTable }),
    };
  }

  private uploadInputs(batch: TokenBatch): { ids: Tensor; release: () => void } {
    const T = batch.batch * batch.seqLen;
    if (batch.inputIds.length !== T)
      throw new Error(
        `input_ids has ${batch.inputIds.length} entries, want ${batch.batch} x ${batch.seqLen}`,
      );
    const V = this.config.vocabSize;
    for (let i = 0; i < T; i++) {
      const id = batch.inputIds[i]!;
      if (!(id >= 0 && id < V))
        throw new Error(`input_ids[${i}] = ${id} is outside the vocabulary [0, ${V})`);
    }
    // inputs are written with writeBuffer: submit first so a reused buffer is not still queued
    this.gpu.submit();
    const ids = this.gpu.upload('input_ids', 'i32', [T], batch.inputIds, 'activations');
    return { ids, release: () => ids.release() };
  }

  private embed(ctx: BlockContext, ids: Tensor): Tensor {
    const x = this.gpu.tensor('x0', 'f32', [ctx.tokens, this.config.hiddenSize], 'activations');
    const o = this.weights.outer;
    embeddingForward(this.gpu, {
      ids,
      table: o.embed.tensor,
      out: x,
      ...(o.positions && {
        positionTable: o.positions.tensor,
        positions: { offset: ctx.cache?.past ?? 0, sequenceLength: ctx.shape.seqLen },
      }),
    });
    return x;
  }

  private blockForward(ctx: BlockContext, layer: number, x: Tensor): { out: Tensor; tape: Tape } {
    return this.config.family === 'llama'
      ? llamaBlockForward(ctx, layer, x)
      : gpt2BlockForward(ctx, layer, x);
  }

  private blockBackward(
    ctx: BlockContext,
    layer: number,
    tape: Tape,
    dOut: Tensor,
    sink: GradientSink,
  ): Tensor {
    return this.config.family === 'llama'
      ? llamaBlockBackward(ctx, layer, tape as LlamaTape, dOut, sink)
      : gpt2BlockBackward(ctx, layer, tape as Gpt2Tape, dOut, sink);
  }

  /**
   * Blocks in order. With keep = false every block input is released as soon as it is consumed; with
   * keep = true, inputs (checkpointing) or whole tapes are kept for the backward.
   */
  private async blocksForward(
    ctx: BlockContext,
    x0: Tensor,
    keep: boolean,
    hooks: StepHooks,
  ): Promise<{ final: Tensor; inputs: Tensor[]; tapes: (Tape | undefined)[] }> {
    const inputs: Tensor[] = [];
    const tapes: (Tape | undefined)[] = [];
    let x = x0;
    for (let layer = 0; layer < this.config.numLayers; layer++) {
      await hooks.beforeBlockForward?.(layer);
      const { out, tape } = this.blockForward(ctx, layer, x);
      if (keep && !this.options.checkpointing) {
        tapes.push(tape);
        inputs.push(x);
      } else {
        tape.group.releaseAll();
        tapes.push(undefined);
        if (keep) inputs.push(this.keepInput(ctx, layer, x));
        else x.release();
      }
      x = out;
      // a safe point (no scratch in use): let the GPU start, and let the allocator reclaim what was freed
      this.gpu.submit();
    }
    return { final: x, inputs, tapes };
  }

  private finalNorm(
    ctx: BlockContext,
    x: Tensor,
  ): { y: Tensor; mean: Tensor; rstd: Tensor; release: () => void } {
    const c = this.config;
    // the LM head's matmul operand
    const y = this.gpu.tensor('xf', ctx.operand, [ctx.tokens, c.hiddenSize], 'activations');
    const mean = this.gpu.tensor('xf.mean', 'f32', [ctx.tokens], 'activations');
    const rstd = this.gpu.tensor('xf.rstd', 'f32', [ctx.tokens], 'activations');
    normForward(ctx, this.weights.outer.finalNorm, { x, y, mean, rstd });
    return {
      y,
      mean,
      rstd,
      release: () => {
        y.release();
        mean.release();
        rstd.release();
      },
    };
  }

  private async run(
    batch: TokenBatch,
    sink: GradientSink | undefined,
    hooks: StepHooks,
    backward: BackwardOptions = {},
  ): Promise<LossResult> {
    const gpu = this.gpu;
    const c = this.config;
    const ctx = this.context(batch);
    const T = ctx.tokens;
    const targetsHost = shiftLabels(batch.labels, batch.batch, batch.seqLen);
    let kept = 0;
    for (const t of targetsHost) {
      if (t === -100) continue;
      if (!(t >= 0 && t < c.vocabSize))
        throw new Error(`label ${t} is outside the vocabulary [0, ${c.vocabSize}) (use -100 to ignore)`);
      kept++;
    }
    if (kept === 0)
      throw new Error(
        'batch has no labelled tokens (every label is -100 after the shift): nothing to learn from',
      );
    await hooks.beforeForward?.();
    // host writes (writeBuffer) right after the submit inside uploadInputs, before anything is recorded
    const { ids, release: releaseIds } = this.uploadInputs(batch);
    const targets = gpu.upload('targets', 'i32', [T], targetsHost, 'activations');
    const loss = gpu.tensor('loss', 'f32', [1], 'activations');
    gpu.fill32(loss, 0);
    const x0 = this.embed(ctx, ids);
    const training = sink !== undefined;
    const fwd = await this.blocksForward(ctx, x0, training, hooks);
    await hooks.beforeHeadForward?.();
    const xf = this.finalNorm(ctx, fwd.final);
    const dxf = training ? gpu.tensor('dxf', 'f32', [T, c.hiddenSize], 'activations') : undefined;
    this.lossHead(ctx, xf.y, targets, kept, loss, sink, dxf, backward.lossScale);
    this.gpu.submit();
    if (training && dxf) {
      // final norm backward: dx_L from dxf
      const dx = gpu.tensor('dx', 'f32', [T, c.hiddenSize], 'activations');
      normGradients(ctx, sink, this.weights.outer.finalNorm, {
        dy: dxf,
        x: fwd.final,
        mean: xf.mean,
        rstd: xf.rstd,
        dx,
        accumulateDx: false,
      });
      xf.release();
      dxf.release();
      fwd.final.release();
      let grad = dx;
      for (let layer = c.numLayers - 1; layer >= 0; layer--) {
        const kept = fwd.inputs[layer]!;
        const input =
          kept.dtype === 'f32' ? kept : cast(gpu, kept, 'f32', this.hidden(ctx, `L${layer}.input`));
        const tape = fwd.tapes[layer] ?? this.recompute(ctx, layer, input);
        grad = this.blockBackward(ctx, layer, tape, grad, sink);
        input.release();
        kept.release();
        this.gpu.submit();
        await hooks.afterBlockBackward?.(layer);
      }
      this.embeddingBackward(ctx, ids, grad, sink);
      grad.release();
    } else {
      xf.release();
      fwd.final.release();
    }
    targets.release();
    releaseIds();
    return { loss, keptTokens: kept };
  }

  /** An f32 [T, C] residual-stream tensor. */
  private hidden(ctx: BlockContext, label: string): Tensor {
    return this.gpu.tensor(label, 'f32', [ctx.tokens, this.config.hiddenSize], 'activations');
  }

  /** A block input checkpointing keeps for the backward: an f16 copy in mixed precision (x is released). */
  private keepInput(ctx: BlockContext, layer: number, x: Tensor): Tensor {
    if (ctx.operand === 'f32') return x;
    const copy = cast(this.gpu, x, 'f16', this.gpu.tensor(`L${layer}.input`, 'f16', x.shape, 'activations'));
    x.release();
    return copy;
  }

  /** Recompute a block's forward (gradient checkpointing): its output is not needed, only the tape. */
  private recompute(ctx: BlockContext, layer: number, input: Tensor): Tape {
    const { out, tape } = this.blockForward(ctx, layer, input);
    out.release();
    return tape;
  }

  /** LM head and cross-entropy over token chunks; with a sink, also dxf and the LM head's gradient. */
  private lossHead(
    ctx: BlockContext,
    xf: Tensor,
    targets: Tensor,
    kept: number,
    loss: Tensor,
    sink: GradientSink | undefined,
    dxf: Tensor | undefined,
    lossScale: GpuScalar | undefined,
  ): void {
    const gpu = this.gpu;
    const c = this.config;
    const T = ctx.tokens;
    const V = c.vocabSize;
    const C = c.hiddenSize;
    const chunk = Math.min(this.chunkTokens, T);
    const head = this.weights.outer.lmHead;
    const w = head.tensor;
    const headTarget = sink?.wants(head.spec) ? sink.gradTarget(head.spec) : undefined;
    const logits = gpu.tensor('logits.chunk', 'f32', [chunk, V], 'activations');
    const lse = gpu.tensor('logits.lse', 'f32', [chunk], 'activations');
    const perToken = gpu.tensor('loss.perToken', 'f32', [chunk], 'activations');
    const partial = gpu.tensor('loss.partial', 'f32', [1], 'activations');
    const count = gpu.tensor('loss.count', 'u32', [1], 'activations');
    // mixed precision: the loss gradient is a separate f16 tensor (the matmuls' operand); f32: in place
    const dlogits =
      sink && ctx.operand !== 'f32'
        ? gpu.tensor('dlogits.chunk', ctx.operand, [chunk, V], 'activations')
        : undefined;
    for (let t0 = 0; t0 < T; t0 += chunk) {
      const rows = Math.min(chunk, T - t0);
      const lgRows = new Tensor(logits.buffer, 'f32', [rows, V], 'logits.rows', logits.byteOffset);
      headForward(gpu, {
        m: rows,
        x: { tensor: xf, offset: t0 * C },
        w,
        out: lgRows,
        label: 'lm_head forward',
      });
      const tg = new Tensor(targets.buffer, 'i32', [rows], 'targets.chunk', targets.byteOffset + t0 * 4);
      const lseRows = new Tensor(lse.buffer, 'f32', [rows], 'lse.rows', lse.byteOffset);
      const perRows = new Tensor(perToken.buffer, 'f32', [rows], 'loss.rows', perToken.byteOffset);
      crossEntropyForward(gpu, {
        logits: lgRows,
        targets: tg,
        losses: perRows,
        logSumExp: lseRows,
        meanLoss: partial,
        keptCount: count,
        divideBy: kept,
      });
      addScaled(gpu, loss, partial, 1, loss);
      if (!sink || !dxf) continue;
      const dlRows = dlogits
        ? new Tensor(dlogits.buffer, dlogits.dtype, [rows, V], 'dlogits.rows', dlogits.byteOffset)
        : lgRows;
      crossEntropyBackward(gpu, {
        logits: lgRows,
        targets: tg,
        logSumExp: lseRows,
        keptCount: count,
        dlogits: dlRows,
        divideBy: kept,
        ...(lossScale && { gradScaleBy: lossScale }),
      });
      headInputGradient(gpu, {
        m: rows,
        dlogits: dlRows,
        w,
        dx: { tensor: dxf, offset: t0 * C },
        label: 'lm_head dX',
      });
      if (headTarget) {
        headWeightGradient(gpu, {
          m: rows,
          dlogits: dlRows,
          x: { tensor: xf, offset: t0 * C },
          dw: headTarget.tensor,
          beta: headTarget.accumulate || t0 > 0 ? 1 : 0,
          label: 'lm_head dW',
        });
      }
    }
    for (const t of [logits, lse, perToken, partial, count, dlogits]) t?.release();
  }

  private embeddingBackward(ctx: BlockContext, ids: Tensor, dx: Tensor, sink: GradientSink): void {
    const { embed, positions } = this.weights.outer;
    if (sink.wants(embed.spec)) {
      const t = sink.gradTarget(embed.spec);
      // tied: the LM head already wrote (or added) its part into the same target
      embeddingBackward(this.gpu, {
        dy: dx,
        ids: t.ids ?? ids,
        tableGrad: t.tensor,
        accumulate: t.accumulate || this.config.tieWordEmbeddings,
      });
    }
    if (positions && sink.wants(positions.spec)) {
      const t = sink.gradTarget(positions.spec);
      embeddingBackward(this.gpu, {
        dy: dx,
        ids: { offset: 0, sequenceLength: ctx.shape.seqLen },
        tableGrad: t.tensor,
        accumulate: t.accumulate,
      });
    }
  }
}
