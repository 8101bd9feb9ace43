export { renderTrainReport, renderBenchReport, type BenchReportInput } from './train-report.js';
export {
  lineChart,
  barChart,
  niceTicks,
  scale,
  type Series,
  type Bar,
  type ChartOptions,
} from './svg-chart.js';
