// What a memory plan is computed from: the run's geometry and the trainer options that change what is
// allocated. Everything but the geometry, the mode and the weight dtype defaults to the trainer's defaults.
import { DEFAULT_SLOTS } from '@lsp-offload/gpu-dawn';
import { DEFAULT_TRAINER_OPTIONS, type TrainMode, type TrainerOptions } from '../options/trainer-options.js';
import type { WeightDtype } from '../model/weights.js';
import type { Precision } from '../model/precision.js';

/** The Trainer's default lead (Trainer.leadBlocks): the recorder runs at most this many blocks ahead. */
export const DEFAULT_LEAD_BLOCKS = 2;

/**
 * lsp: blocks ahead of the forward whose step D may be uploaded. A D that misses the backward waits on
 * the host until its block is this close to its forward, so the GPU holds the D of a few blocks, not of
 * every block (1.75 GiB on the 6.7B shape); the uploads still run ahead of the applies that need them.
 */
export const UPLOAD_AHEAD_BLOCKS = 2;

export interface PlanInput extends Partial<
  Pick<
    TrainerOptions,
    | 'rank'
    | 'nnz'
    | 'checkpointing'
    | 'lossChunkTokens'
    | 'exactProjectors'
    | 'nonProjected'
    | 'stepDtype'
    | 'gradientDtype'
    | 'embeddingGradient'
    | 'weightDecay'
    | 'pipelined'
    | 'stagingChunkBytes'
  >
> {
  batch: number;
  seqLen: number;
  mode: TrainMode;
  weightDtype: WeightDtype;
  /**
   * The run's precision: mixed stores matmul operands (activations) f16. Default f32; the trainer passes
   * its own, resolved from auto by the adapter (so does `lsp-offload plan`).
   */
  precision?: Precision;
  /**
   * Micro-batches per optimizer step (--grad-accum; default 1): lsp's token-embedding gradient holds the
   * rows all of them touch.
   */
  gradAccum?: number;
  /** Blocks the recorder may run ahead of the GPU (Trainer.leadBlocks; default 2). */
  leadBlocks?: number;
  /**
   * lsp: how many blocks' updates may miss the backward and wait for the next step's forward. Which ones
   * do depends on GPU vs CPU speed, so the default is the worst case: every block.
   */
  deferredBlocks?: number;
  /**
   * Staging slots of the offloading modes' rings, per direction. Default: enough for the transfers of
   * leadBlocks + 1 blocks at once (see stagingSlotsFor), cut down where `budgetBytes` needs the room.
   */
  stagingSlots?: { down: number; up: number };
  /** A GPU memory budget the default staging rings should fit into (they shrink, never below 4 slots). */
  budgetBytes?: number;
  /** The adapter's storage binding limit (GpuRuntime.maxBindingBytes): LM-head chunks stay within it. */
  maxBindingBytes?: number;
}

export type ResolvedPlanInput = Required<PlanInput>;

export function resolvePlanInput(input: PlanInput, numLayers: number): ResolvedPlanInput {
  const d = DEFAULT_TRAINER_OPTIONS;
  const r: ResolvedPlanInput = {
    batch: input.batch,
    seqLen: input.seqLen,
    mode: input.mode,
    weightDtype: input.weightDtype,
    precision: input.precision ?? 'f32',
    rank: input.rank ?? d.rank,
    nnz: input.nnz ?? d.nnz,
    checkpointing: input.checkpointing ?? d.checkpointing,
    lossChunkTokens: input.lossChunkTokens ?? d.lossChunkTokens,
    exactProjectors: input.exactProjectors ?? d.exactProjectors,
    nonProjected: input.nonProjected ?? d.nonProjected,
    stepDtype: input.stepDtype ?? d.stepDtype,
    gradientDtype: input.gradientDtype ?? d.gradientDtype,
    embeddingGradient: input.embeddingGradient ?? d.embeddingGradient,
    weightDecay: input.weightDecay ?? d.weightDecay,
    pipelined: input.pipelined ?? d.pipelined,
    gradAccum: input.gradAccum ?? 1,
    leadBlocks: input.leadBlocks ?? DEFAULT_LEAD_BLOCKS,
    deferredBlocks: Math.min(numLayers, input.deferredBlocks ?? numLayers),
    stagingSlots: input.stagingSlots ?? { down: DEFAULT_SLOTS, up: DEFAULT_SLOTS },
    stagingChunkBytes: input.stagingChunkBytes ?? d.stagingChunkBytes,
    budgetBytes: input.budgetBytes ?? Infinity,
    maxBindingBytes: input.maxBindingBytes ?? Infinity,
  };
  const positive: (keyof ResolvedPlanInput)[] = ['batch', 'seqLen', 'lossChunkTokens', 'gradAccum'];
  if (r.mode === 'lsp' && !r.exactProjectors) positive.push('rank', 'nnz');
  for (const key of positive) {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      throw new RangeError(`memory plan: ${key} must be a positive integer, got ${String(v)}`);
  }
  if (r.mode === 'lsp' && !r.exactProjectors && r.nnz > r.rank)
    throw new RangeError(`memory plan: --nnz ${r.nnz} exceeds --rank ${r.rank}`);
  if (!Number.isInteger(r.stagingChunkBytes) || r.stagingChunkBytes < 4096 || r.stagingChunkBytes % 256 !== 0)
    throw new RangeError(
      `memory plan: the staging chunk must be a multiple of 256 bytes, at least 4 KiB; got ${r.stagingChunkBytes}`,
    );
  for (const n of [r.stagingSlots.down, r.stagingSlots.up])
    if (!Number.isInteger(n) || n < 1)
      throw new RangeError(`memory plan: staging slots must be positive integers, got ${n}`);
  if (!(r.leadBlocks >= 0 && r.deferredBlocks >= 0))
    throw new RangeError('memory plan: leadBlocks and deferredBlocks must be >= 0');
  return r;
}
