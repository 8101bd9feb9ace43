// What a run is configured by: the trainer's options and their defaults, the list of modes.
export { DEFAULT_REFIT, DEFAULT_TRAINER_OPTIONS, LR_SCHEDULES, TRAIN_MODES } from './trainer-options.js';
export { BENCH_DEFAULTS, DEMO_RUN_DEFAULTS, MODEL_RUN_DEFAULTS, runDefaults } from './run-defaults.js';
export type { RunDefaults, RunFit } from './run-defaults.js';
export type {
  LossScaleOptions,
  LrScheduleKind,
  TrainerOptions,
  TrainMode,
  OptimizerHyperParams,
} from './trainer-options.js';
