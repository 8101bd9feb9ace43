// Defaults of whole runs, beside the trainer's (trainer-options.ts): what `lsp-offload train`, `plan` and
// `bench` use when a flag is not given. A training run's depend on the model: the built-in demo is tiny
// and learns fast, a real fine-tune is gentler.
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
  dtype: WeightDtype;
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
  dtype: 'f32',
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
  dtype: 'f32',
};

/** The defaults for `model`: 'demo' or a model directory. */
export function runDefaults(model: string): RunDefaults {
  return model === 'demo' ? DEMO_RUN_DEFAULTS : MODEL_RUN_DEFAULTS;
}

/** A benchmark (`runBenchmark`, `lsp-offload bench`): a few steps of a random-initialised preset shape. */
export const BENCH_DEFAULTS = {
  preset: 'llama-tiny',
  batch: 2,
  seqLen: 128,
  dtype: 'f16' as WeightDtype,
  rank: 64,
  steps: 3,
  warmupSteps: 1,
  lr: 1e-5,
};
