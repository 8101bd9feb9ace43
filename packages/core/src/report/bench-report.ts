// The HTML report of `lsp-offload bench`: step time per mode, where it went, memory against the plan,
// and the losses of the measured steps.
import { bytesByKindText, gbpsText, type OffloadSummary } from '../run/offload-summary.js';
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
    offload?: OffloadSummary;
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
  const withPath = ok.filter((r) => r.offload?.criticalPathMs != null);
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
    ...(withPath.length
      ? [
          barChart(
            withPath.map((r) => ({
              label: label(r),
              segments: [
                { name: 'downloads', value: r.offload!.downloadMs ?? 0 },
                { name: 'CPU steps', value: r.offload!.cpuMs ?? 0 },
                { name: 'uploads', value: r.offload!.uploadMs ?? 0 },
              ],
            })),
            {
              title: "Offload path with GPU time 0: each stage's busy time (the critical path overlaps them)",
              xLabel: 'ms',
              yLabel: '',
            },
          ),
        ]
      : []),
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
      offloadTable(b, label) +
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

/** The offloading modes' path: critical path, its stages, the rings' GB/s and the bytes by kind. */
function offloadTable(
  b: BenchReportInput,
  label: (r: BenchReportInput['results'][number]) => string,
): string {
  const rows = b.results.filter((r) => !r.error && r.offload);
  if (!rows.length) return '';
  const ms = (x: number | null) => (x === null ? '-' : `${x.toFixed(1)} ms`);
  return (
    '<h3>Offload path per step (critical path: what the transfers, CPU steps and step-boundary tail would add to a GPU that finished its compute at once)</h3>' +
    htmlTable([
      [
        'mode',
        'critical path',
        'downloads / CPU / uploads (busiest)',
        'rings GB/s down / up',
        'down per step',
        'up per step',
      ],
      ...rows.map((r) => {
        const s = r.offload!;
        return [
          label(r),
          ms(s.criticalPathMs),
          `${ms(s.downloadMs)} / ${ms(s.cpuMs)} / ${ms(s.uploadMs)} (${s.bound ?? '-'})`,
          gbpsText(s),
          bytesByKindText(s, 'toHost'),
          bytesByKindText(s, 'toDevice'),
        ];
      }),
    ])
  );
}
