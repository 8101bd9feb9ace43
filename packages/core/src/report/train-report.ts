// The HTML report of a training run, drawn from the same records `--metrics-out` writes (one per step,
// evaluation and projector check): loss curves, evaluation accuracy, throughput, where each step's time
// went, bytes moved, projector errors, and mixed precision's loss scale with the skipped steps.
import { maxOf, mean, median } from '../util/stats.js';
import { htmlPage, htmlTable } from './html-page.js';
import { escapeHtml, lineChart, type Series } from './svg-chart.js';

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
  /** Absent in records written before mixed precision. */
  lossScale?: number;
  skippedSteps?: number;
}

interface SettingsRecord {
  type: 'settings';
  [key: string]: unknown;
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

/** A self-contained HTML page for the records of one run (steps, evaluations, refits, in any order). */
export function renderTrainReport(records: readonly object[], title = 'lsp-offload training run'): string {
  const steps = records.filter((r): r is StepRecord => (r as StepRecord).type === 'step');
  const evals = records.filter((r): r is EvalRecord => (r as EvalRecord).type === 'eval');
  const refits = records.filter((r): r is RefitRecord => (r as RefitRecord).type === 'refit');
  const settings = records.find((r): r is SettingsRecord => (r as SettingsRecord).type === 'settings');
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
  if (steps.some((s) => s.lossScale !== undefined && (s.lossScale !== 1 || s.skippedSteps)))
    charts.push(
      lineChart(
        [
          { name: 'log2 loss scale', points: steps.map((s) => [s.step, Math.log2(s.lossScale ?? NaN)]) },
          { name: 'skipped steps (total)', points: steps.map((s) => [s.step, s.skippedSteps ?? NaN]) },
        ],
        {
          title: 'Mixed precision: loss scale and steps skipped for non-finite gradients',
          xLabel: 'step',
          xIntegers: true,
          yLabel: 'log2 scale / steps',
          yFromZero: true,
        },
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
  const summary = htmlTable([
    [
      'mode',
      'steps',
      'train loss',
      'eval loss',
      'mean tokens/s',
      'median step',
      'peak GPU memory',
      'loss scale (last)',
      'skipped steps',
    ],
    [
      last?.mode ?? '-',
      String(steps.length),
      steps.length ? `${steps[0]!.loss.toFixed(4)} -> ${last!.loss.toFixed(4)}` : '-',
      evals.length
        ? `${evals[0]!.evalLoss.toFixed(4)} -> ${evals[evals.length - 1]!.evalLoss.toFixed(4)}`
        : '-',
      steps.length ? mean(steps.map((s) => s.tokensPerSecond)).toFixed(0) : '-',
      steps.length ? `${median(steps.map((s) => s.wallMs)).toFixed(1)} ms` : '-',
      steps.length ? `${(maxOf(steps.map((s) => s.peakGpuBytes)) / MiB).toFixed(1)} MiB` : '-',
      last?.lossScale !== undefined ? formatLossScale(last.lossScale) : '-',
      last?.skippedSteps !== undefined ? String(last.skippedSteps) : '-',
    ],
  ]);
  return htmlPage(
    title,
    `<h2>${escapeHtml(title)}</h2>${settings ? settingsTable(settings) : ''}${summary}<div>${charts.join('')}</div>`,
  );
}

/** A loss scale as the power of two it usually is (2^16), else as a number. */
export function formatLossScale(scale: number): string {
  const e = Math.log2(scale);
  return Number.isInteger(e) && Math.abs(e) > 3 ? `2^${e}` : String(scale);
}

/** The run's settings as one two-row table (name, value), in the record's order. */
function settingsTable(settings: SettingsRecord): string {
  const entries = Object.entries(settings).filter(([k, v]) => k !== 'type' && v !== null && v !== undefined);
  const show = (v: unknown) => (Array.isArray(v) ? v.join(', ') : String(v));
  return htmlTable([entries.map(([k]) => k), entries.map(([, v]) => show(v))]);
}
