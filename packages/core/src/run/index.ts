export { runTraining } from './train-run.js';
export type { TrainRunOptions, TrainRunEvents, TrainSummary, EvalMetrics } from './train-run.js';
export { runBenchmark, formatBenchTable } from './bench-run.js';
export type { BenchOptions, BenchModeSpec, BenchModeResult } from './bench-run.js';
export { MODEL_PRESETS, presetConfig } from './presets.js';
export { defaultWeightDtype, resolveWeightDtype } from './weight-dtype.js';
export type { WeightDtypeFlag } from './weight-dtype.js';
