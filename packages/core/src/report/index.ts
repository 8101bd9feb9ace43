export { formatLossScale, renderTrainReport } from './train-report.js';
export { renderBenchReport, type BenchReportInput } from './bench-report.js';
export {
  lineChart,
  barChart,
  niceTicks,
  tickLabels,
  scale,
  type Series,
  type Bar,
  type ChartOptions,
} from './svg-chart.js';
export {
  compareConvergence,
  convergenceRows,
  lossAtStep,
  MetricsFormatError,
  parseMetricsJsonl,
  renderConvergenceReport,
  renderConvergenceText,
  runCurve,
  targetCrossing,
  LOSS_GOAL,
  TIME_GOAL,
  type ConvergenceOptions,
  type ConvergenceSummary,
  type EvalPoint,
  type GoalResult,
  type GoalStatus,
  type RunCurve,
  type RunSummary,
  type TargetCrossing,
} from './convergence.js';
