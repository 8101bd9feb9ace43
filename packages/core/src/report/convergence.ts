// Convergence of several training runs on the same data: held-out loss against steps and against
// training wall time, the time each run takes to reach a target loss, the loss every run has after the
// same number of steps, and the paper's two goals (lsp's loss within 2 % of native's; lsp's time to the
// target at least 33 % below ZeRO-Offload's). Input: the records `train --metrics-out` writes.
import { maxOf, mean, minOf } from '../util/stats.js';
import { htmlPage, htmlTable } from './html-page.js';
import { escapeHtml, lineChart, type Series } from './svg-chart.js';

/** One evaluation of a run; times are training time (evaluations excluded), in seconds. */
export interface EvalPoint {
  step: number;
  loss: number;
  trainSeconds: number;
}

export interface RunCurve {
  /** Names the run in tables and legends (e.g. 'lsp', 'zero@2.5GiB'). */
  label: string;
  mode: string;
  /** Sorted by step. */
  evals: EvalPoint[];
  /** The last step the run trained (0 when it has no step records). */
  steps: number;
  /** Mean tokens/s over the step records (NaN when there are none). */
  meanTokensPerSecond: number;
}

export class MetricsFormatError extends Error {
  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'MetricsFormatError';
  }
}

/** Parses `--metrics-out` text (one JSON object a line); `source` names the file in errors. */
export function parseMetricsJsonl(text: string, source: string): object[] {
  const records: object[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new MetricsFormatError(`${source}:${i + 1}`, `not valid JSON (${(e as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new MetricsFormatError(`${source}:${i + 1}`, 'not a JSON object');
    records.push(value);
  });
  return records;
}

interface RawEval {
  type: 'eval';
  mode?: unknown;
  step?: unknown;
  evalLoss?: unknown;
  elapsedMs?: unknown;
  evaluatingMs?: unknown;
}

interface RawStep {
  type: 'step';
  mode?: unknown;
  step?: unknown;
  tokensPerSecond?: unknown;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The evaluations and steps of one run's records, checked. */
export function runCurve(label: string, records: readonly object[], source = label): RunCurve {
  const evalRecords = records.filter((r): r is RawEval => (r as RawEval).type === 'eval');
  const stepRecords = records.filter((r): r is RawStep => (r as RawStep).type === 'step');
  if (!evalRecords.length)
    throw new MetricsFormatError(
      source,
      'has no evaluation records (train with --metrics-out and --eval-every)',
    );
  const modes = new Set([...evalRecords, ...stepRecords].map((r) => r.mode));
  if (modes.size !== 1 || typeof [...modes][0] !== 'string')
    throw new MetricsFormatError(source, `records of more than one mode (${[...modes].join(', ')})`);
  const evals = evalRecords.map((r): EvalPoint => {
    if (!isNumber(r.step) || !isNumber(r.evalLoss))
      throw new MetricsFormatError(source, `an evaluation record without a step and a finite evalLoss`);
    if (!isNumber(r.elapsedMs) || !isNumber(r.evaluatingMs))
      throw new MetricsFormatError(
        source,
        `the evaluation at step ${r.step} has no elapsedMs/evaluatingMs (written by an older lsp-offload train)`,
      );
    return { step: r.step, loss: r.evalLoss, trainSeconds: (r.elapsedMs - r.evaluatingMs) / 1000 };
  });
  evals.sort((a, b) => a.step - b.step);
  for (let i = 1; i < evals.length; i++)
    if (evals[i]!.step === evals[i - 1]!.step)
      throw new MetricsFormatError(source, `two evaluations at step ${evals[i]!.step}`);
  const tps = stepRecords.map((r) => r.tokensPerSecond).filter(isNumber);
  return {
    label,
    mode: [...modes][0] as string,
    evals,
    steps: maxOf(stepRecords.map((r) => r.step).filter(isNumber), 0),
    meanTokensPerSecond: tps.length ? mean(tps) : NaN,
  };
}

/** Linear interpolation of the curve's loss at `step` (clamped to its first and last evaluation). */
export function lossAtStep(evals: readonly EvalPoint[], step: number): number {
  const after = evals.findIndex((e) => e.step >= step);
  if (after < 0) return evals[evals.length - 1]!.loss;
  if (after === 0 || evals[after]!.step === step) return evals[after]!.loss;
  const a = evals[after - 1]!;
  const b = evals[after]!;
  return a.loss + ((step - a.step) / (b.step - a.step)) * (b.loss - a.loss);
}

export interface TargetCrossing {
  /** Training time at which the loss reaches the target, interpolated between two evaluations. */
  seconds: number;
  /** The same crossing in steps (interpolated). */
  step: number;
  /** The first evaluation at or below the target. */
  firstEvalStep: number;
}

/**
 * Where the loss first reaches `target`: linear in time (and steps) between the last evaluation above
 * the target and the first at or below it; null when no evaluation reaches it.
 */
export function targetCrossing(evals: readonly EvalPoint[], target: number): TargetCrossing | null {
  const i = evals.findIndex((e) => e.loss <= target);
  if (i < 0) return null;
  const b = evals[i]!;
  if (i === 0) return { seconds: b.trainSeconds, step: b.step, firstEvalStep: b.step };
  const a = evals[i - 1]!;
  const f = (a.loss - target) / (a.loss - b.loss);
  return {
    seconds: a.trainSeconds + f * (b.trainSeconds - a.trainSeconds),
    step: a.step + f * (b.step - a.step),
    firstEvalStep: b.step,
  };
}

export interface ConvergenceOptions {
  /** The target held-out loss; default: the reference run's loss at `targetFraction` of its steps. */
  target?: number;
  /** Default 0.8. */
  targetFraction?: number;
  /** Label of the reference (native) run; default: the first run in mode native. */
  reference?: string;
}

export interface RunSummary {
  label: string;
  mode: string;
  steps: number;
  /** Held-out loss at the common step. */
  finalLoss: number;
  /** (finalLoss - reference's) / reference's; null without a reference run. */
  lossVsReference: number | null;
  crossing: TargetCrossing | null;
  /** Training time of the run up to its last evaluation, in seconds. */
  trainSeconds: number;
  meanTokensPerSecond: number;
}

export type GoalStatus = 'met' | 'missed' | 'n/a';

export interface GoalResult {
  run: string;
  against: string | null;
  goal: string;
  status: GoalStatus;
  /** The measured quantity and why the status is what it is. */
  detail: string;
}

export interface ConvergenceSummary {
  target: number;
  /** How the target was chosen. */
  targetSource: string;
  /** The last step at which every run was evaluated: final losses are compared there. */
  commonStep: number;
  reference: string | null;
  runs: RunSummary[];
  goals: GoalResult[];
}

/** lsp's held-out loss at most this much above native's (the paper: the same accuracy). */
export const LOSS_GOAL = 0.02;
/** lsp's time to the target at least this much below zero's (the paper: 33.1 % to 62.5 % less). */
export const TIME_GOAL = 0.33;

/** The part of a label after '@' (e.g. a GPU budget): lsp and zero runs of one setting are paired. */
function settingOf(label: string): string {
  const at = label.indexOf('@');
  return at < 0 ? '' : label.slice(at + 1);
}

const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} %`;

export function compareConvergence(
  runs: readonly RunCurve[],
  options: ConvergenceOptions = {},
): ConvergenceSummary {
  if (!runs.length) throw new Error('no runs to compare');
  const labels = new Set<string>();
  for (const r of runs) {
    if (labels.has(r.label)) throw new Error(`two runs are labelled '${r.label}'`);
    labels.add(r.label);
  }
  const reference =
    options.reference !== undefined
      ? runs.find((r) => r.label === options.reference)
      : runs.find((r) => r.mode === 'native');
  if (options.reference !== undefined && !reference)
    throw new Error(`no run is labelled '${options.reference}' (runs: ${[...labels].join(', ')})`);
  const fraction = options.targetFraction ?? 0.8;
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`the target fraction ${fraction} is not in (0, 1]`);
  let target: number;
  let targetSource: string;
  if (options.target !== undefined) {
    if (!Number.isFinite(options.target)) throw new Error(`the target loss ${options.target} is not finite`);
    target = options.target;
    targetSource = 'given';
  } else {
    if (!reference) throw new Error('no native run to take the target loss from: give a target loss');
    const last = reference.evals[reference.evals.length - 1]!.step;
    const step = fraction * last;
    target = lossAtStep(reference.evals, step);
    targetSource = `${reference.label}'s held-out loss at ${(100 * fraction).toFixed(0)} % of its run (step ${+step.toFixed(2)})`;
  }
  const stepSets = runs.map((r) => new Set(r.evals.map((e) => e.step)));
  const commonStep = Math.max(
    ...runs[0]!.evals.map((e) => e.step).filter((s) => stepSets.every((set) => set.has(s))),
  );
  if (!Number.isFinite(commonStep)) throw new Error('the runs have no evaluation step in common');
  const lossAt = (r: RunCurve) => r.evals.find((e) => e.step === commonStep)!.loss;
  const referenceLoss = reference ? lossAt(reference) : null;
  const summaries = runs.map((r): RunSummary => ({
    label: r.label,
    mode: r.mode,
    steps: r.steps,
    finalLoss: lossAt(r),
    lossVsReference: referenceLoss === null ? null : (lossAt(r) - referenceLoss) / referenceLoss,
    crossing: targetCrossing(r.evals, target),
    trainSeconds: r.evals[r.evals.length - 1]!.trainSeconds,
    meanTokensPerSecond: r.meanTokensPerSecond,
  }));
  const goals: GoalResult[] = [];
  const zeros = summaries.filter((s) => s.mode === 'zero');
  for (const lsp of summaries.filter((s) => s.mode === 'lsp')) {
    goals.push(lossGoal(lsp, reference ? summaries[runs.indexOf(reference)]! : null));
    const zero =
      zeros.find((z) => settingOf(z.label) === settingOf(lsp.label)) ??
      (zeros.length === 1 ? zeros[0]! : null);
    goals.push(timeGoal(lsp, zero));
  }
  return { target, targetSource, commonStep, reference: reference?.label ?? null, runs: summaries, goals };
}

function lossGoal(lsp: RunSummary, native: RunSummary | null): GoalResult {
  const goal = `held-out loss at the common step within ${100 * LOSS_GOAL} % of native's`;
  if (!native || lsp.lossVsReference === null)
    return { run: lsp.label, against: null, goal, status: 'n/a', detail: 'no native run' };
  return {
    run: lsp.label,
    against: native.label,
    goal,
    status: lsp.lossVsReference <= LOSS_GOAL ? 'met' : 'missed',
    detail: `${lsp.finalLoss.toFixed(4)} vs ${native.finalLoss.toFixed(4)} (${pct(lsp.lossVsReference)})`,
  };
}

function timeGoal(lsp: RunSummary, zero: RunSummary | null): GoalResult {
  const goal = `time to the target at least ${100 * TIME_GOAL} % below zero's`;
  const base = { run: lsp.label, against: zero?.label ?? null, goal };
  if (!zero) return { ...base, status: 'n/a', detail: 'no zero run to compare with' };
  if (!lsp.crossing) return { ...base, status: 'missed', detail: `${lsp.label} did not reach the target` };
  if (!zero.crossing) {
    // zero needs more than its whole run: the saving is at least what that bound gives
    const atLeast = 1 - lsp.crossing.seconds / zero.trainSeconds;
    return {
      ...base,
      status: atLeast >= TIME_GOAL ? 'met' : 'n/a',
      detail: `${zero.label} did not reach the target in ${zero.trainSeconds.toFixed(1)} s; ${lsp.label} took ${lsp.crossing.seconds.toFixed(1)} s (at least ${(100 * atLeast).toFixed(1)} % less)`,
    };
  }
  const saving = 1 - lsp.crossing.seconds / zero.crossing.seconds;
  return {
    ...base,
    status: saving >= TIME_GOAL ? 'met' : 'missed',
    detail: `${lsp.crossing.seconds.toFixed(1)} s vs ${zero.crossing.seconds.toFixed(1)} s (${(100 * Math.abs(saving)).toFixed(1)} % ${saving >= 0 ? 'less' : 'more'})`,
  };
}

/** The rows of the comparison table (header first), as text cells. */
export function convergenceRows(s: ConvergenceSummary): string[][] {
  return [
    [
      'run',
      'mode',
      'steps',
      `held-out loss @ ${s.commonStep}`,
      `vs ${s.reference ?? 'native'}`,
      'time to target (s)',
      'step reached',
      'train time (s)',
      'tokens/s',
    ],
    ...s.runs.map((r) => [
      r.label,
      r.mode,
      String(r.steps),
      r.finalLoss.toFixed(4),
      r.lossVsReference === null ? '-' : pct(r.lossVsReference),
      r.crossing ? r.crossing.seconds.toFixed(1) : 'not reached',
      r.crossing ? r.crossing.step.toFixed(1) : '-',
      r.trainSeconds.toFixed(1),
      Number.isFinite(r.meanTokensPerSecond) ? r.meanTokensPerSecond.toFixed(0) : '-',
    ]),
  ];
}

/** The table and the goals as plain text (what `lsp-offload compare` prints). */
export function renderConvergenceText(s: ConvergenceSummary): string {
  const rows = convergenceRows(s);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [
    `target held-out loss ${s.target.toFixed(4)}: ${s.targetSource}`,
    '',
    line(rows[0]!),
    ...rows.slice(1).map(line),
    '',
    ...s.goals.map(
      (g) => `${g.status.padEnd(6)} ${g.run}: ${g.goal}${g.against ? ` (vs ${g.against})` : ''}: ${g.detail}`,
    ),
  ].join('\n');
}

/** A self-contained HTML page: eval loss against steps and against training time, the table, the goals. */
export function renderConvergenceReport(
  runs: readonly RunCurve[],
  s: ConvergenceSummary,
  title = 'lsp-offload convergence',
): string {
  const target = (xs: number[]): Series => ({
    name: `target ${s.target.toFixed(4)}`,
    points: [
      [minOf(xs), s.target],
      [maxOf(xs), s.target],
    ],
  });
  const bySteps: Series[] = runs.map((r) => ({
    name: r.label,
    points: r.evals.map((e) => [e.step, e.loss]),
    dots: true,
  }));
  const byTime: Series[] = runs.map((r) => ({
    name: r.label,
    points: r.evals.map((e) => [e.trainSeconds, e.loss]),
    dots: true,
  }));
  const allSteps = runs.flatMap((r) => r.evals.map((e) => e.step));
  const allSeconds = runs.flatMap((r) => r.evals.map((e) => e.trainSeconds));
  const charts = [
    lineChart([...bySteps, target(allSteps)], {
      title: 'Held-out loss against steps',
      xLabel: 'step',
      xIntegers: true,
      yLabel: 'cross-entropy',
    }),
    lineChart([...byTime, target(allSeconds)], {
      title: 'Held-out loss against training wall time',
      xLabel: 'seconds (evaluations excluded)',
      yLabel: 'cross-entropy',
    }),
  ];
  const goals = s.goals.length
    ? `<ul>${s.goals
        .map(
          (g) =>
            `<li><b>${g.status}</b> ${escapeHtml(g.run)}: ${escapeHtml(g.goal)}${g.against ? ` (vs ${escapeHtml(g.against)})` : ''}: ${escapeHtml(g.detail)}</li>`,
        )
        .join('')}</ul>`
    : '<p>No lsp run: no goals to check.</p>';
  return htmlPage(
    title,
    `<h2>${escapeHtml(title)}</h2>` +
      `<p>Target held-out loss ${s.target.toFixed(4)}: ${escapeHtml(s.targetSource)}. Times are training wall ` +
      `time, evaluations excluded; the loss column compares every run at step ${s.commonStep}.</p>` +
      htmlTable(convergenceRows(s)) +
      `<h3>Goals</h3>${goals}<div>${charts.join('')}</div>`,
  );
}
