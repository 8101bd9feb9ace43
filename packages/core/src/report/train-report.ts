// The HTML report of a training run, drawn from the same records `--metrics-out` writes (one per step,
// evaluation and projector check): loss curves, evaluation accuracy, throughput, where each step's time
// went, bytes moved and projector errors.
import { formatMemorySize } from '../planner/format-bytes.js';
import { barChart, escapeHtml, lineChart, type Series } from './svg-chart.js';

interface StepRecord {
  type: 'step';
  step: number;
  mode: string;
  loss: number;
  wallMs: number;
  tokensPerSecond: number;
  bytesToHost: number;
  bytesToDevice: number;
  gpuBusyMs: number | null;
  mainThreadBusyMs: number;
  workerBusyMs: number;
  waitForUpdatesMs: number;
  peakGpuBytes: number;
}

interface EvalRecord {
  type: 'eval';
  step: number;
  evalLoss: number;
  accuracy?: { exactMatch: number; tokenAccuracy?: number };
}

interface RefitRecord {
  type: 'refit';
  step: number;
  groups: { errorBefore: number; errorAfter: number; refitted: boolean }[];
}

const MiB = 2 ** 20;

function page(title: string, body: string): string {
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
    `<style>body{font-family:sans-serif;margin:24px;max-width:1320px}svg{margin:8px 12px 8px 0;vertical-align:top}` +
    `table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:right}` +
    `td:first-child,th:first-child{text-align:left}</style></head><body>${body}</body></html>\n`
  );
}

function table(rows: readonly (readonly string[])[]): string {
  const [head, ...rest] = rows;
  return (
    `<table><tr>${head!.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>` +
    rest.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('') +
    `</table>`
  );
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** A self-contained HTML page for the records of one run (steps, evaluations, refits, in any order). */
export function renderTrainReport(records: readonly object[], title = 'lsp-offload training run'): string {
  const steps = records.filter((r): r is StepRecord => (r as StepRecord).type === 'step');
  const evals = records.filter((r): r is EvalRecord => (r as EvalRecord).type === 'eval');
  const refits = records.filter((r): r is RefitRecord => (r as RefitRecord).type === 'refit');
  const charts: string[] = [];
  const loss: Series[] = [{ name: 'train loss', points: steps.map((s) => [s.step, s.loss]) }];
  if (evals.length)
    loss.push({ name: 'eval loss', points: evals.map((e) => [e.step, e.evalLoss]), dots: true });
  charts.push(lineChart(loss, { title: 'Loss', xLabel: 'step', xIntegers: true, yLabel: 'cross-entropy' }));
  if (evals.some((e) => e.accuracy))
    charts.push(
      lineChart(
        [
          {
            name: 'exact match',
            points: evals.filter((e) => e.accuracy).map((e) => [e.step, 100 * e.accuracy!.exactMatch]),
            dots: true,
          },
        ],
        { title: 'Held-out answers', xLabel: 'step', xIntegers: true, yLabel: '%', yFromZero: true },
      ),
    );
  charts.push(
    lineChart([{ name: 'tokens/s', points: steps.map((s) => [s.step, s.tokensPerSecond]) }], {
      title: 'Throughput',
      xLabel: 'step',
      xIntegers: true,
      yLabel: 'tokens/s',
      yFromZero: true,
    }),
  );
  const time: Series[] = [
    { name: 'step', points: steps.map((s) => [s.step, s.wallMs]) },
    { name: 'GPU busy', points: steps.map((s) => [s.step, s.gpuBusyMs ?? NaN]) },
    { name: 'main thread', points: steps.map((s) => [s.step, s.mainThreadBusyMs]) },
    { name: 'CPU optimizer', points: steps.map((s) => [s.step, s.workerBusyMs]) },
    { name: 'waited for updates', points: steps.map((s) => [s.step, s.waitForUpdatesMs]) },
  ];
  charts.push(
    lineChart(time, {
      title: 'Where the time went',
      xLabel: 'step',
      xIntegers: true,
      yLabel: 'ms',
      yFromZero: true,
    }),
  );
  if (steps.some((s) => s.bytesToHost || s.bytesToDevice))
    charts.push(
      lineChart(
        [
          { name: 'to host', points: steps.map((s) => [s.step, s.bytesToHost / MiB]) },
          { name: 'to device', points: steps.map((s) => [s.step, s.bytesToDevice / MiB]) },
        ],
        { title: 'Bytes moved', xLabel: 'step', xIntegers: true, yLabel: 'MiB per step', yFromZero: true },
      ),
    );
  if (refits.length)
    charts.push(
      lineChart(
        [
          {
            name: 'before',
            points: refits.map((r) => [r.step, mean(r.groups.map((g) => g.errorBefore))]),
            dots: true,
          },
          {
            name: 'after',
            points: refits.map((r) => [r.step, mean(r.groups.map((g) => g.errorAfter))]),
            dots: true,
          },
        ],
        {
          title: 'Projector checks: mean reconstruction error',
          xLabel: 'step',
          xIntegers: true,
          yLabel: 'e',
          yFromZero: true,
        },
      ),
    );
  const last = steps[steps.length - 1];
  const summary = table([
    ['mode', 'steps', 'train loss', 'eval loss', 'mean tokens/s', 'median step', 'peak GPU memory'],
    [
      last?.mode ?? '-',
      String(steps.length),
      steps.length ? `${steps[0]!.loss.toFixed(4)} -> ${last!.loss.toFixed(4)}` : '-',
      evals.length
        ? `${evals[0]!.evalLoss.toFixed(4)} -> ${evals[evals.length - 1]!.evalLoss.toFixed(4)}`
        : '-',
      steps.length ? mean(steps.map((s) => s.tokensPerSecond)).toFixed(0) : '-',
      steps.length ? `${median(steps.map((s) => s.wallMs)).toFixed(1)} ms` : '-',
      steps.length ? `${(Math.max(...steps.map((s) => s.peakGpuBytes)) / MiB).toFixed(1)} MiB` : '-',
    ],
  ]);
  return page(title, `<h2>${escapeHtml(title)}</h2>${summary}<div>${charts.join('')}</div>`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

export interface BenchReportInput {
  model: string;
  device: string;
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
  return page(
    title,
    `<h2>${escapeHtml(title)}</h2><p>${escapeHtml(b.device)}</p>` +
      table([['mode', 'step', 'tokens/s', 'live peak', 'planned peak'], ...rows]) +
      `<div>${charts.join('')}</div>`,
  );
}
