// The activations one training step allocates, mirroring ../model/transformer.ts and the block files
// (llama-block.ts, gpt2-block.ts): what each block's forward keeps on its tape, what its backward adds,
// and what the LM head and the loss hold. The residual stream, statistics, logits and the residual
// gradient are f32; matmul operands (norm outputs, q/k/v/o, the MLP's activations and their gradients)
// are in the operand dtype `op`: f32, or f16 in mixed precision (model/precision.ts).
import { normChunking } from '@lsp-offload/gpu-dawn/reference';
import type { ModelConfig } from '../hf/index.js';
import { lossChunkRows } from '../model/lm-head.js';
import { tensorBuffer, type PlannedBuffer } from './planned-buffer.js';

/** The storage dtype of matmul operands (operandDtype of the run's precision). */
export type OperandDtype = 'f16' | 'f32';

export interface StepGeometry {
  batch: number;
  seqLen: number;
  /** batch * seqLen */
  tokens: number;
  /** Rows of one LM-head chunk (Transformer: a multiple of 64, at most the batch's tokens). */
  lossChunk: number;
}

export function stepGeometry(
  batch: number,
  seqLen: number,
  lossChunkTokens: number,
  vocabSize = 1,
  maxBindingBytes = Infinity,
): StepGeometry {
  const tokens = batch * seqLen;
  const chunk = lossChunkRows(lossChunkTokens, vocabSize, maxBindingBytes);
  return { batch, seqLen, tokens, lossChunk: Math.min(chunk, tokens) };
}

const act = (label: string, shape: number[], count = 1): PlannedBuffer =>
  tensorBuffer(label, 'activations', 'f32', shape, count);
const opAct = (op: OperandDtype, label: string, shape: number[], count = 1): PlannedBuffer =>
  tensorBuffer(label, 'activations', op, shape, count);

/** input_ids and targets (i32 [T]) and the loss (f32 [1]): alive for the whole step. */
export function stepInputs(g: StepGeometry): PlannedBuffer[] {
  return [
    tensorBuffer('input_ids', 'activations', 'i32', [g.tokens]),
    tensorBuffer('targets', 'activations', 'i32', [g.tokens]),
    act('loss', [1]),
  ];
}

/**
 * A block's input or output x [T, C], f32 (the residual stream); the block inputs checkpointing keeps are
 * f16 copies in mixed precision.
 */
export function hiddenState(
  c: ModelConfig,
  g: StepGeometry,
  label: string,
  count = 1,
  dtype: OperandDtype = 'f32',
): PlannedBuffer {
  return tensorBuffer(label, 'activations', dtype, [g.tokens, c.hiddenSize], count);
}

/** What a block's forward keeps for its backward (its TensorGroup), without the output. */
export function blockTape(c: ModelConfig, g: StepGeometry, op: OperandDtype): PlannedBuffer[] {
  const T = g.tokens;
  const C = c.hiddenSize;
  const qWidth = c.numHeads * c.headDim;
  const rowStats = [g.batch, c.numHeads, g.seqLen];
  if (c.family === 'llama') {
    const kvWidth = c.numKeyValueHeads * c.headDim;
    return [
      opAct(op, 'tape xn1, xn2', [T, C], 2),
      act('tape h', [T, C]),
      act('tape rstd1, rstd2', [T], 2),
      opAct(op, 'tape q, o', [T, qWidth], 2),
      opAct(op, 'tape k, v', [T, kvWidth], 2),
      act('tape attention lse', rowStats),
      opAct(op, 'tape gate, up, act', [T, c.intermediateSize], 3),
    ];
  }
  return [
    opAct(op, 'tape xn1, xn2', [T, C], 2),
    act('tape h', [T, C]),
    act('tape mean/rstd 1, 2', [T], 4),
    opAct(op, 'tape qkv', [T, 3 * C]),
    opAct(op, 'tape q, k, v, o', [T, qWidth], 4),
    act('tape attention lse', rowStats),
    opAct(op, 'tape fc, act', [T, c.intermediateSize], 2),
  ];
}

/**
 * The backward's own temporaries of one block (dOut becomes dX in place and is counted as the gradient;
 * in mixed precision its f16 copy, which dH's copy later reuses, is one more).
 */
export function blockBackwardTemporaries(c: ModelConfig, g: StepGeometry, op: OperandDtype): PlannedBuffer[] {
  const T = g.tokens;
  const C = c.hiddenSize;
  const qWidth = c.numHeads * c.headDim;
  const rowStats = [g.batch, c.numHeads, g.seqLen];
  const dOutCopy = op === 'f32' ? [] : [opAct(op, 'backward dOut, dH as operands', [T, C])];
  if (c.family === 'llama') {
    const kvWidth = c.numKeyValueHeads * c.headDim;
    return [
      ...dOutCopy,
      opAct(op, 'backward dAct', [T, c.intermediateSize]),
      act('backward dXn1, dXn2', [T, C], 2),
      opAct(op, 'backward dO, dq', [T, qWidth], 2),
      opAct(op, 'backward dk, dv', [T, kvWidth], 2),
      act('backward attention delta', rowStats),
    ];
  }
  return [
    ...dOutCopy,
    opAct(op, 'backward dAct', [T, c.intermediateSize]),
    act('backward dXn1, dXn2', [T, C], 2),
    opAct(op, 'backward dO, dq, dk, dv', [T, qWidth], 4),
    act('backward attention delta', rowStats),
    opAct(op, 'backward dQkv', [T, 3 * C]),
  ];
}

/** The final norm's output (the LM head's operand) and statistics (xf, mean, rstd). */
export function finalNormOutputs(c: ModelConfig, g: StepGeometry, op: OperandDtype): PlannedBuffer[] {
  return [opAct(op, 'final norm xf', [g.tokens, c.hiddenSize]), act('final norm mean, rstd', [g.tokens], 2)];
}

/**
 * The chunked LM head + cross-entropy of a training step: logits [chunk, vocab] f32 and per-token
 * statistics; in mixed precision the loss gradient as a separate f16 chunk (f32: in place).
 */
export function lossHeadBuffers(c: ModelConfig, g: StepGeometry, op: OperandDtype): PlannedBuffer[] {
  return [
    act('LM head logits chunk', [g.lossChunk, c.vocabSize]),
    ...(op === 'f32' ? [] : [opAct(op, 'LM head dlogits chunk', [g.lossChunk, c.vocabSize])]),
    act('LM head logsumexp, per-token loss', [g.lossChunk], 2),
    act('loss partial', [1]),
    tensorBuffer('loss count', 'activations', 'u32', [1]),
  ];
}

/**
 * The scratch partials of a reduce over tensors of these element counts (gpu-dawn's reduce: 32 values per
 * invocation and level, every level alive until the next submit); 4-byte results.
 */
export function reduceWorkspace(label: string, numels: readonly number[]): PlannedBuffer[] {
  const perThread = 32;
  let n = numels.reduce((a, x) => a + Math.max(1, Math.ceil(x / perThread)), 0);
  const out: PlannedBuffer[] = [];
  while (n > 1) {
    out.push(tensorBuffer(label, 'workspace', 'u32', [n]));
    n = Math.ceil(n / perThread);
  }
  return out;
}

/** Workspace of a norm backward that computes parameter gradients: partial sums [1|2, chunks, C]. */
export function normBackwardWorkspace(c: ModelConfig, g: StepGeometry, count = 1): PlannedBuffer {
  const { chunks } = normChunking(g.tokens);
  const sums = c.norm.kind === 'layernorm' ? 2 : 1;
  return tensorBuffer('norm backward partial sums', 'workspace', 'f32', [sums, chunks, c.hiddenSize], count);
}

// gpu-dawn's COLUMN_SUM_CHUNK_ROWS (not exported from its index): rows per first-level chunk of biasGrad.
const COLUMN_SUM_CHUNK_ROWS = 256;
const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/** Workspace of a bias gradient (columnSum) over T rows, if it needs a second level. */
export function biasGradWorkspace(g: StepGeometry, cols: number, count = 1): PlannedBuffer[] {
  const chunkRows = Math.max(COLUMN_SUM_CHUNK_ROWS, Math.ceil(g.tokens / MAX_WORKGROUPS_PER_DIMENSION));
  const chunks = Math.ceil(g.tokens / chunkRows);
  return chunks > 1
    ? [tensorBuffer('bias gradient partial sums', 'workspace', 'f32', [chunks, cols], count)]
    : [];
}

/** Workspace of the embedding backward: sorted token order (and, for learned positions, position ids). */
export function embeddingBackwardWorkspace(
  c: ModelConfig,
  g: StepGeometry,
  positionsWanted: boolean,
): PlannedBuffer[] {
  const out = [tensorBuffer('embedding backward token order', 'workspace', 'u32', [g.tokens])];
  if (c.positions.kind === 'learned' && positionsWanted) {
    out.push(tensorBuffer('embedding backward token order', 'workspace', 'u32', [g.tokens]));
    out.push(tensorBuffer('embedding backward position ids', 'workspace', 'i32', [g.tokens]));
  }
  return out;
}
