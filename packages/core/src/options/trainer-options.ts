// What a training run is configured by. One object shared by the trainer, the planner and the CLI.
import type { PrecisionFlag } from '../model/precision.js';

/** The training modes, the one list everything that names them (CLI flags, checks) reads. */
export const TRAIN_MODES = ['lsp', 'zero', 'native'] as const;
export type TrainMode = (typeof TRAIN_MODES)[number];

/** The learning-rate schedules after warmup (trainer/lr-schedule.ts computes them). */
export const LR_SCHEDULES = ['constant', 'linear', 'cosine'] as const;
export type LrScheduleKind = (typeof LR_SCHEDULES)[number];

export interface OptimizerHyperParams {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/** Mixed precision's dynamic loss scale (torch GradScaler's rule; x0.5 and a skipped step on overflow). */
export interface LossScaleOptions {
  /** The first step's scale (GradScaler: 2^16). */
  initScale: number;
  /** Clean steps after which the scale doubles (GradScaler: 2000). */
  growthInterval: number;
}

export interface TrainerOptions extends OptimizerHyperParams {
  mode: TrainMode;
  /**
   * mixed: f16 matmul operands (tensor cores), f32 residual stream, statistics, logits, loss and weight
   * gradients, a dynamic loss scale; f32: every activation f32. auto: mixed where the adapter has
   * shader-f16 (model/precision.ts).
   */
  precision: PrecisionFlag;
  /** mixed precision's loss scale. */
  lossScale: LossScaleOptions;
  /** Learning rate per step: warmup, then constant, linear or cosine decay to 0 at totalSteps (lr-schedule.ts). */
  lrSchedule: LrScheduleKind;
  warmupSteps: number;
  totalSteps: number;
  /**
   * Global gradient-norm clipping (0: off), of the mean gradient over the micro-batches. lsp clips the
   * norm of what it steps: the compressed gradients S of the projected layers and the dense gradients of
   * the others. The offloading modes then start their CPU steps only once the whole backward is done.
   */
  maxGradNorm: number;
  /** Micro-batches per optimizer step (gradient accumulation): the step uses their mean gradient. */
  gradAccum: number;
  /** Subspace size d of the projectors (lsp). */
  rank: number;
  /** Non-zeros per projector row r (lsp). */
  nnz: number;
  projectorInit: 'gaussian' | 'rademacher';
  /** lsp: signed-permutation projectors with d = rows = cols (every projected layer must be square). */
  exactProjectors: boolean;
  /**
   * lsp: embeddings, norms, biases, lm_head: trained by an offloaded (CPU) AdamW (the default, as the
   * CLI's --non-projected), or frozen.
   */
  nonProjected: 'frozen' | 'adamw';
  /**
   * lsp: dtype of the subspace step D on its way back to the GPU. f16 carries the step in units of the
   * learning rate (-mhat / (sqrt(vhat) + eps), of order 1, where the step itself would sit among f16's
   * subnormals at small learning rates); the apply multiplies by the step's learning rate.
   */
  stepDtype: 'f16' | 'f32';
  /**
   * lsp: dtype the gradients travel to the CPU in (the compressed S and the non-projected parameters'
   * dense gradients): f16 with a per-tensor power-of-two scale computed on the GPU (the largest value
   * lands in [2^14, 2^15); the scale travels in the unit's header), or f32. zero mode keeps its own
   * format (ZeRO-Offload's: fp16 gradients of the linears).
   */
  gradientDtype: 'f16' | 'f32';
  /**
   * lsp: the token embedding's gradient travels as the rows the step's batches touched ('rows'; the CPU
   * still steps every row, the untouched ones with a zero gradient, so the numbers are those of 'dense')
   * or whole. Tied embeddings (whose gradient includes the LM head's) always travel whole.
   */
  embeddingGradient: 'rows' | 'dense';
  checkpointing: boolean;
  /** CPU optimizer threads. */
  threads: number;
  seed: number;
  lossChunkTokens: number;
  /**
   * Overlap the CPU optimizer and transfers with GPU work (layer-wise schedule). false: finish every
   * update before the next step's first forward, in a fixed order (the reference the schedule must match).
   */
  pipelined: boolean;
  /**
   * The largest staging buffer of the transfer rings (each tensor is split into chunks of this size). The
   * planner uses less when a block's largest tensor is smaller, and sizes the slot counts.
   */
  stagingChunkBytes: number;
  /**
   * Dense parameters on the CPU optimizer (zero mode; lsp's non-projected ones) whose f32 values exceed
   * this many bytes are stepped in row blocks of about this size, so their download, CPU step and upload
   * overlap instead of following one another (the embeddings at the step boundary, above all).
   */
  optimizerShardBytes: number;
  /**
   * The batch geometry the run will train on. Under a GPU memory budget Trainer.create checks the memory
   * plan for it and refuses to start over budget; without it only a one-token step is checked.
   */
  plannedBatch?: { batch: number; seqLen: number };
  /**
   * lsp: learn and refit the projectors. Every `checkFreq` steps the relative reconstruction error of each
   * pair is measured on dense gradients of held-out batches (Trainer.maybeRefit), pairs above `alpha` are
   * refitted (Adam on the values, fresh positions) and their layers' moments moved into the new subspace.
   * `atStart`: check before the first step too (a fresh run). Off by default: learned pairs reconstruct
   * far better than the random starting ones but make smaller steps in weight space, and at the same lr
   * training was slower with the check than without (README, Convergence).
   */
  refit?: { alpha: number; checkFreq: number; sharing: 'type' | 'layer'; atStart?: boolean };
}

export const DEFAULT_TRAINER_OPTIONS: TrainerOptions = {
  mode: 'lsp',
  precision: 'auto',
  lossScale: { initScale: 2 ** 16, growthInterval: 2000 },
  lrSchedule: 'constant',
  warmupSteps: 0,
  totalSteps: 0,
  maxGradNorm: 0,
  gradAccum: 1,
  lr: 1e-4,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 0,
  rank: 256,
  nnz: 4,
  projectorInit: 'gaussian',
  exactProjectors: false,
  nonProjected: 'adamw',
  stepDtype: 'f16',
  gradientDtype: 'f16',
  embeddingGradient: 'rows',
  checkpointing: true,
  threads: 0,
  seed: 0,
  lossChunkTokens: 1024,
  pipelined: true,
  stagingChunkBytes: 4 << 20,
  optimizerShardBytes: 32 << 20,
};

/** Projector refits when asked for (TrainerOptions.refit; `lsp-offload train --refit-every`). */
export const DEFAULT_REFIT: Required<NonNullable<TrainerOptions['refit']>> = {
  alpha: 0.3,
  checkFreq: 100,
  sharing: 'type',
  atStart: false,
};
