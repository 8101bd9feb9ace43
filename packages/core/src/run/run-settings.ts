// The settings of a training run as one record (the first of its metrics): what the report shows at the
// top and what a reader of metrics.jsonl needs to know which run the numbers belong to.
import type { WeightDtype } from '../model/weights.js';
import type { TrainerOptions } from '../options/trainer-options.js';
import type { TrainRunOptions } from './train-run.js';

export interface RunSettings {
  type: 'settings';
  model: string;
  data: string[];
  mode: string;
  /** lsp: subspace size d and non-zeros per projector row r. */
  rank: number | null;
  nnz: number | null;
  batch: number;
  gradAccum: number;
  seqLen: number;
  dtype: WeightDtype;
  /** f32 or mixed (resolved from auto by the adapter). */
  precision: string;
  steps: number;
  lr: number;
  lrSchedule: string;
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  evalEvery: number;
  seed: number;
  /** lsp: how gradients travel down, the step D up, and the embedding gradient (null otherwise). */
  gradientDtype: string | null;
  stepDtype: string | null;
  embeddingGradient: string | null;
}

export function runSettings(o: TrainRunOptions, t: TrainerOptions, dtype: WeightDtype): RunSettings {
  const lsp = t.mode === 'lsp';
  return {
    type: 'settings',
    model: o.model,
    data: o.model === 'demo' ? ['the demo task'] : [...(o.data ?? [])],
    mode: t.mode,
    rank: lsp ? t.rank : null,
    nnz: lsp ? t.nnz : null,
    batch: o.batch,
    gradAccum: t.gradAccum,
    seqLen: o.seqLen,
    dtype,
    precision: t.precision,
    steps: o.steps,
    lr: t.lr,
    lrSchedule: t.lrSchedule,
    warmupSteps: t.warmupSteps,
    weightDecay: t.weightDecay,
    maxGradNorm: t.maxGradNorm,
    evalEvery: o.evalEvery,
    seed: t.seed,
    gradientDtype: lsp ? t.gradientDtype : null,
    stepDtype: lsp ? t.stepDtype : null,
    embeddingGradient: lsp ? t.embeddingGradient : null,
  };
}
