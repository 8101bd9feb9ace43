export { Trainer } from './trainer.js';
export type { StepMetrics } from './trainer.js';
export type { CpuStepTiming } from './mode-updates.js';
export { checkLrSchedule, lrFactor, scheduledLr } from './lr-schedule.js';
export type { LrScheduleOptions } from './lr-schedule.js';
export { maxRank, rankNote, rankProblem } from './rank-check.js';
export { countNonFinite, describeNonFinite, trainerStateTensors } from './finite-check.js';
export type { NonFiniteReport } from './finite-check.js';
export { adapterLimitsOf, adapterProblems, checkAdapterLimits } from './dispatch-limits.js';
export { offloadCriticalPath } from './offload-critical-path.js';
export type {
  OffloadCriticalPath,
  OffloadFigures,
  OffloadPiece,
  OffloadSpan,
  OffloadStage,
  TransferRates,
} from './offload-critical-path.js';
export type { StepCounters, TransferKind } from './step-recorder.js';
