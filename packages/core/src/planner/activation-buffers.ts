// The activations one training step allocates, mirroring ../model/transformer.ts and the block files
// (llama-block.ts, gpt2-block.ts): what each block's forward keeps on its tape, what its backward adds,
// and what the LM head and the loss hold. Everything is f32 (activations are f32 whatever the weights).
import { normChunking } from '@lsp-offload/gpu-dawn/reference';
import type { ModelConfig } from '../hf/index.js';
import { lossChunkRows } from '../model/lm-head.js';
import { tensorBuffer, type PlannedBuffer } from './planned-buffer.js';

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

/** input_ids and targets (i32 [T]) and the loss (f32 [1]): alive for the whole step. */
export function stepInputs(g: StepGeometry): PlannedBuffer[] {
  return [
    tensorBuffer('input_ids', 'activations', 'i32', [g.tokens]),
    tensorBuffer('targets', 'activations', 'i32', [g.tokens]),
    act('loss', [1]),
  ];
}

/** A block's input or output x [T, C] (block inputs are what checkpointing keeps). */
export function hiddenState(c: ModelConfig, g: StepGeometry, label: string, count = 1): PlannedBuffer {
  return act(label, [g.tokens, c.hiddenSize], count);
}

/** What a block's forward keeps for its backward (its TensorGroup), without the output. */
export function blockTape(c: ModelConfig, g: StepGeometry): PlannedBuffer[] {
  const T = g.tokens;
  const C = c.hiddenSize;
  const qWidth = c.numHeads * c.headDim;
  const rowStats = [g.batch, c.numHeads, g.seqLen];
  if (c.family === 'llama') {
    const kvWidth = c.numKeyValueHeads * c.headDim;
    return [
      act('tape xn1, h, xn2', [T, C], 3),
      act('tape rstd1, rstd2', [T], 2),
      act('tape q, o', [T, qWidth], 2),
      act('tape k, v', [T, kvWidth], 2),
      act('tape attention lse', rowStats),
      act('tape gate, up, act', [T, c.intermediateSize], 3),
    ];
  }
  return [
    act('tape xn1, h, xn2', [T, C], 3),
    act('tape mean/rstd 1, 2', [T], 4),
    act('tape qkv', [T, 3 * C]),
    act('tape q, k, v, o', [T, qWidth], 4),
    act('tape attention lse', rowStats),
    act('tape fc, act', [T, c.intermediateSize], 2),
  ];
}

/** The backward's own temporaries of one block (dOut becomes dX in place and is counted as the gradient). */
export function blockBackwardTemporaries(c: ModelConfig, g: StepGeometry): PlannedBuffer[] {
  const T = g.tokens;
  const C = c.hiddenSize;
  const qWidth = c.numHeads * c.headDim;
  const rowStats = [g.batch, c.numHeads, g.seqLen];
  if (c.family === 'llama') {
    const kvWidth = c.numKeyValueHeads * c.headDim;
    return [
      act('backward dAct', [T, c.intermediateSize]),
      act('backward dXn1, dXn2', [T, C], 2),
      act('backward dO, dq', [T, qWidth], 2),
      act('backward dk, dv', [T, kvWidth], 2),
      act('backward attention delta', rowStats),
    ];
  }
  return [
    act('backward dAct', [T, c.intermediateSize]),
    act('backward dXn1, dXn2', [T, C], 2),
    act('backward dO, dq, dk, dv', [T, qWidth], 4),
    act('backward attention delta', rowStats),
    act('backward dQkv', [T, 3 * C]),
  ];
}

/** The final norm's output and statistics (xf, mean, rstd). */
export function finalNormOutputs(c: ModelConfig, g: StepGeometry): PlannedBuffer[] {
  return [act('final norm xf', [g.tokens, c.hiddenSize]), act('final norm mean, rstd', [g.tokens], 2)];
}

/** The chunked LM head + cross-entropy: logits [chunk, vocab] and per-token statistics. */
export function lossHeadBuffers(c: ModelConfig, g: StepGeometry): PlannedBuffer[] {
  return [
    act('LM head logits chunk', [g.lossChunk, c.vocabSize]),
    act('LM head logsumexp, per-token loss', [g.lossChunk], 2),
    act('loss partial', [1]),
    tensorBuffer('loss count', 'activations', 'u32', [1]),
  ];
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
