export { Trainer } from './trainer.js';
export type { StepMetrics } from './trainer.js';
export { DEFAULT_TRAINER_OPTIONS } from './options.js';
export type { TrainerOptions, TrainMode, OptimizerHyperParams } from './options.js';
export { createProjectedLayers, projectedSpecs } from './projected-layers.js';
export type { ProjectedLayer } from './projected-layers.js';
export { LR_SCHEDULES, checkLrSchedule, lrFactor, scheduledLr } from './lr-schedule.js';
export type { LrScheduleKind, LrScheduleOptions } from './lr-schedule.js';
export { maxRank, rankNote, rankProblem } from './rank-check.js';
