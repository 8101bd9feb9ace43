// The HTML report of `lsp-offload bench`: step time per mode, where it went, memory against the plan,
// and the losses of the measured steps.
import { formatMemorySize } from '../util/format-bytes.js';
import { htmlPage, htmlTable } from './html-page.js';
import { barChart, escapeHtml, lineChart } from './svg-chart.js';

const MiB = 2 ** 20;

export interface BenchReportInput {
  model: string;
  device: string;
  /** The run's settings (model, modes, batch, seq, dtype, d, r, the machine...), shown first. */
  settings?: Readonly<Record<string, string | number>>;
  results: readonly {
    mode: string;
    budgetBytes?: number;
    medianStepMs: number;
    tokensPerSecond: number;
    livePeakGpuBytes: number;
    predictedPeakBytes: number;
    gpuBusyMsPerStep: number | null;
    mainThreadBusyMsPerStep: number;
    workerBusyMsPerStep: number;
    waitForUpdatesMsPerStep: number;
    losses: readonly number[];
    kernelProfile?: {
      readonly families: readonly { family: string; dispatches: number; gpuMs: number; share: number }[];
    };
    error?: string;
  }[];
}

/** The HTML page of `lsp-offload bench`: step time per mode, where it went, memory, losses. */
export function renderBenchReport(b: BenchReportInput, title = `lsp-offload bench: ${b.model}`): string {
  const ok = b.results.filter((r) => !r.error);
  const label = (r: BenchReportInput['results'][number]) =>
    r.budgetBytes ? `${r.mode} (${formatMemorySize(r.budgetBytes)})` : r.mode;
  const charts = [
    barChart(
      ok.map((r) => ({ label: label(r), segments: [{ name: 'step', value: r.medianStepMs }] })),
      { title: 'Median step time', xLabel: 'ms', yLabel: '' },
    ),
    barChart(
      ok.map((r) => ({
        label: label(r),
        segments: [
          { name: 'GPU busy', value: r.gpuBusyMsPerStep ?? 0 },
          { name: 'GPU idle', value: Math.max(0, r.medianStepMs - (r.gpuBusyMsPerStep ?? r.medianStepMs)) },
        ],
      })),
      { title: 'GPU busy and idle per step', xLabel: 'ms', yLabel: '' },
    ),
    barChart(
      ok.map((r) => ({
        label: label(r),
        segments: [
          { name: 'main thread', value: r.mainThreadBusyMsPerStep },
          { name: 'CPU optimizer (workers)', value: r.workerBusyMsPerStep },
          { name: 'waited for updates', value: r.waitForUpdatesMsPerStep },
        ],
      })),
      { title: 'CPU side per step (overlaps the GPU)', xLabel: 'ms', yLabel: '' },
    ),
    barChart(
      ok.flatMap((r) => [
        { label: `${label(r)} live`, segments: [{ name: 'MiB', value: r.livePeakGpuBytes / MiB }] },
        { label: `${label(r)} planned`, segments: [{ name: 'MiB', value: r.predictedPeakBytes / MiB }] },
      ]),
      { title: 'GPU memory: live peak vs planned', xLabel: 'MiB', yLabel: '' },
    ),
    lineChart(
      ok.map((r) => ({ name: label(r), points: r.losses.map((l, i) => [i + 1, l] as const) })),
      { title: 'Losses of the measured steps', xLabel: 'measured step', xIntegers: true, yLabel: 'loss' },
    ),
  ];
  const rows = b.results.map((r) =>
    r.error
      ? [label(r), 'failed', r.error, '', '']
      : [
          label(r),
          `${r.medianStepMs.toFixed(1)} ms`,
          r.tokensPerSecond.toFixed(0),
          `${(r.livePeakGpuBytes / MiB).toFixed(0)} MiB`,
          `${(r.predictedPeakBytes / MiB).toFixed(0)} MiB`,
        ],
  );
  return htmlPage(
    title,
    `<h2>${escapeHtml(title)}</h2><p>${escapeHtml(b.device)}</p>` +
      (b.settings ? htmlTable([Object.keys(b.settings), Object.values(b.settings).map(String)]) : '') +
      htmlTable([['mode', 'step', 'tokens/s', 'live peak', 'planned peak'], ...rows]) +
      kernelTables(b) +
      `<div>${charts.join('')}</div>`,
  );
}

/** --profile-kernels: GPU time by kernel family per mode (one timed pass per dispatch: shares). */
function kernelTables(b: BenchReportInput): string {
  return b.results
    .filter((r) => r.kernelProfile)
    .map(
      (r) =>
        `<h3>GPU time by kernel family: ${escapeHtml(r.mode)} (one timed pass per dispatch: shares, not step time)</h3>` +
        htmlTable([
          ['kernel family', 'dispatches', 'GPU ms', 'share'],
          ...r.kernelProfile!.families.map((f) => [
            f.family,
            String(f.dispatches),
            f.gpuMs.toPrecision(4),
            `${(100 * f.share).toFixed(1)} %`,
          ]),
        ]),
    )
    .join('');
}
