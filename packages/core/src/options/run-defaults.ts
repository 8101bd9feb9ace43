// Defaults of whole runs, beside the trainer's (trainer-options.ts): what `lsp-offload train`, `plan` and
// `bench` use when a flag is not given. A training run's depend on the model: the built-in demo is tiny
// and learns fast, a real fine-tune is gentler; a model with few positions gets shorter sequences, and a
// short run evaluates at least thrice.
import type { WeightDtype } from '../model/weights.js';
import { DEFAULT_TRAINER_OPTIONS } from './trainer-options.js';

export interface RunDefaults {
  /** Projector subspace size d. */
  rank: number;
  steps: number;
  /** Sequences per step. */
  batch: number;
  seqLen: number;
  lr: number;
  /** Steps between evaluations, and held-out batches per evaluation. */
  evalEvery: number;
  evalBatches: number;
  /** auto: f16 where the adapter has shader-f16, else f32 (run/weight-dtype.ts decides). */
  dtype: WeightDtype | 'auto';
}

/** The built-in demo model and task (--model demo). */
export const DEMO_RUN_DEFAULTS: RunDefaults = {
  rank: 64,
  steps: 60,
  batch: 8,
  seqLen: 64,
  lr: 3e-3,
  evalEvery: 20,
  evalBatches: 4,
  dtype: 'auto',
};

/** A Hugging Face model directory. */
export const MODEL_RUN_DEFAULTS: RunDefaults = {
  rank: DEFAULT_TRAINER_OPTIONS.rank,
  steps: 1000,
  batch: 4,
  seqLen: 512,
  lr: 1e-5,
  evalEvery: 100,
  evalBatches: 4,
  dtype: 'auto',
};

/** What the defaults of a run can be fitted to, where known. */
export interface RunFit {
  /** The model's positions: a model directory's sequences are at most this long. */
  positions?: number;
  /** The run's steps (when given): evaluations come at least thrice. */
  steps?: number;
}

/** The defaults for `model` ('demo' or a model directory), fitted to its positions and the run's steps. */
export function runDefaults(model: string, fit: RunFit = {}): RunDefaults {
  const d = { ...(model === 'demo' ? DEMO_RUN_DEFAULTS : MODEL_RUN_DEFAULTS) };
  if (fit.positions !== undefined && model !== 'demo') d.seqLen = Math.min(d.seqLen, fit.positions);
  d.evalEvery = Math.max(1, Math.min(d.evalEvery, Math.floor((fit.steps ?? d.steps) / 3)));
  return d;
}

/** A benchmark (`runBenchmark`, `lsp-offload bench`): a few steps of a random-initialised preset shape. */
export const BENCH_DEFAULTS = {
  preset: 'llama-tiny',
  batch: 2,
  /** At most the model's positions. */
  seqLen: 128,
  dtype: 'auto' as WeightDtype | 'auto',
  rank: 64,
  steps: 3,
  warmupSteps: 1,
  lr: 1e-5,
};
