export { renderTrainReport } from './train-report.js';
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
