// Convergence comparison on synthetic metrics files whose answers are worked out by hand below: the
// target from native's curve, interpolated crossings, the common step, the paper's goals, the text
// table and the HTML page.
import { describe, expect, it } from 'vitest';
import {
  compareConvergence,
  lossAtStep,
  parseMetricsJsonl,
  renderConvergenceReport,
  renderConvergenceText,
  runCurve,
  type RunCurve,
} from '../../src/index.js';

const EVAL_SECONDS = 2; // every evaluation takes 2 s of wall time, which must not count as training

/** A metrics file: evaluations at steps 0, 10, ... with these losses and training seconds, steps between. */
function metricsFile(mode: string, losses: number[], trainSeconds: number[], tokensPerSecond = 100): string {
  const lines: object[] = [];
  losses.forEach((loss, k) => {
    const step = 10 * k;
    if (k > 0)
      for (let s = step - 9; s <= step; s++)
        lines.push({ type: 'step', mode, step: s, loss: loss + 0.1, tokensPerSecond, wallMs: 1 });
    lines.push({
      type: 'eval',
      mode,
      step,
      evalLoss: loss,
      elapsedMs: 1000 * (trainSeconds[k]! + EVAL_SECONDS * k),
      evaluatingMs: 1000 * EVAL_SECONDS * k,
    });
  });
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

const curve = (label: string, text: string): RunCurve => runCurve(label, parseMetricsJsonl(text, label));

const NATIVE = [3.0, 2.5, 2.2, 2.0, 1.9, 1.85];
const LSP = [3.0, 2.6, 2.3, 2.05, 1.95, 1.88];
const LSP_BUDGET = [3.0, 2.7, 2.45, 2.3, 2.2, 2.1];
const seconds = (per10Steps: number) => [0, 1, 2, 3, 4, 5].map((k) => k * per10Steps);

function paperRuns(): RunCurve[] {
  return [
    curve('native', metricsFile('native', NATIVE, seconds(10), 500)),
    curve('lsp', metricsFile('lsp', LSP, seconds(11), 450)),
    curve('zero', metricsFile('zero', NATIVE, seconds(20), 250)),
    curve('lsp@1GiB', metricsFile('lsp', LSP_BUDGET, seconds(12))),
    curve('zero@1GiB', metricsFile('zero', NATIVE, seconds(30))),
  ];
}

describe('convergence comparison', () => {
  it('reads a run: evaluations sorted with training seconds, steps and mean tokens/s', () => {
    const run = curve('lsp', metricsFile('lsp', LSP, seconds(11), 450));
    expect(run.mode).toBe('lsp');
    expect(run.steps).toBe(50);
    expect(run.meanTokensPerSecond).toBe(450);
    expect(run.evals.map((e) => e.step)).toEqual([0, 10, 20, 30, 40, 50]);
    // elapsed 44 + 2 * 4 s of evaluations at step 40: 44 s of training
    expect(run.evals[4]!.trainSeconds).toBeCloseTo(44, 12);
    expect(lossAtStep(run.evals, 25)).toBeCloseTo((2.3 + 2.05) / 2, 12);
    expect(lossAtStep(run.evals, 80)).toBe(1.88);
  });

  it("takes native's loss at 80 % of its run as the target and finds each run's crossing in time", () => {
    const s = compareConvergence(paperRuns());
    // native at step 0.8 * 50 = 40: 1.9
    expect(s.target).toBe(1.9);
    expect(s.reference).toBe('native');
    expect(s.commonStep).toBe(50);
    const by = Object.fromEntries(s.runs.map((r) => [r.label, r]));
    // native: reaches 1.9 exactly at its step-40 evaluation, 40 s of training
    expect(by.native!.crossing!.seconds).toBeCloseTo(40, 9);
    expect(by.native!.crossing!.firstEvalStep).toBe(40);
    // lsp: 1.95 at step 40 (44 s), 1.88 at step 50 (55 s): 5/7 of the way
    expect(by.lsp!.crossing!.seconds).toBeCloseTo(44 + (11 * 5) / 7, 9);
    expect(by.lsp!.crossing!.step).toBeCloseTo(40 + (10 * 5) / 7, 9);
    expect(by.lsp!.crossing!.firstEvalStep).toBe(50);
    expect(by.zero!.crossing!.seconds).toBeCloseTo(80, 9);
    expect(by['zero@1GiB']!.crossing!.seconds).toBeCloseTo(120, 9);
    expect(by['lsp@1GiB']!.crossing).toBeNull();
    expect(by.lsp!.finalLoss).toBe(1.88);
    expect(by.lsp!.lossVsReference).toBeCloseTo((1.88 - 1.85) / 1.85, 12);
    expect(by.lsp!.trainSeconds).toBeCloseTo(55, 9);

    const goals = s.goals.map((g) => [g.run, g.against, g.status]);
    expect(goals).toEqual([
      ['lsp', 'native', 'met'], // +1.6 %
      ['lsp', 'zero', 'met'], // 1 - 51.857 / 80 = 35.2 % less
      ['lsp@1GiB', 'native', 'missed'], // +13.5 %
      ['lsp@1GiB', 'zero@1GiB', 'missed'], // never reached the target
    ]);
    expect(s.goals[1]!.detail).toBe('51.9 s vs 80.0 s (35.2 % less)');
    expect(s.goals[3]!.detail).toBe('lsp@1GiB did not reach the target');
  });

  it('interpolates the target between evaluations and honours a given target', () => {
    const runs = paperRuns();
    // 50 % of native's run: step 25, halfway between 2.2 and 2.0
    const half = compareConvergence(runs, { targetFraction: 0.5 });
    expect(half.target).toBeCloseTo(2.1, 12);
    // lsp: 2.3 at step 20 (22 s) to 2.05 at step 30 (33 s): 0.2 / 0.25 of the way
    expect(half.runs[1]!.crossing!.seconds).toBeCloseTo(22 + 0.8 * 11, 9);
    const given = compareConvergence(runs, { target: 1.88 });
    expect(given.targetSource).toBe('given');
    // zero reaches 1.88 at 80 + 0.4 * 20 s, lsp at 55 s: 37.5 % less
    expect(given.runs[2]!.crossing!.seconds).toBeCloseTo(88, 9);
    expect(given.goals[1]!.detail).toBe('55.0 s vs 88.0 s (37.5 % less)');
    // an lsp run slower than zero: native's curve at 30 s per 10 steps reaches 1.9 at 120 s, zero at 80 s
    const slow = compareConvergence([
      runs[0]!,
      runs[2]!,
      curve('lsp', metricsFile('lsp', NATIVE, seconds(30))),
    ]);
    expect(slow.goals[1]).toMatchObject({ status: 'missed', detail: '120.0 s vs 80.0 s (50.0 % more)' });
  });

  it("when zero never reaches the target, bounds lsp's saving by zero's whole run", () => {
    const runs = [
      curve('native', metricsFile('native', NATIVE, seconds(10))),
      curve('lsp', metricsFile('lsp', NATIVE, seconds(10))), // reaches 1.9 at 40 s
      curve('zero', metricsFile('zero', LSP_BUDGET, seconds(20))), // 100 s without reaching it
      curve('zero@x', metricsFile('zero', LSP_BUDGET, seconds(7))), // 35 s without reaching it
      curve('lsp@x', metricsFile('lsp', NATIVE, seconds(10))),
    ];
    const s = compareConvergence(runs);
    expect(s.goals[1]).toMatchObject({ against: 'zero', status: 'met' }); // at least 1 - 40/100 = 60 % less
    expect(s.goals[1]!.detail).toContain('at least 60.0 % less');
    expect(s.goals[3]).toMatchObject({ against: 'zero@x', status: 'n/a' }); // at least 1 - 40/35 < 0
  });

  it('compares final losses at the last step every run was evaluated at', () => {
    const runs = paperRuns();
    runs[2] = curve('zero', metricsFile('zero', NATIVE.slice(0, 4), seconds(20).slice(0, 4)));
    const s = compareConvergence(runs);
    expect(s.commonStep).toBe(30);
    expect(s.runs.map((r) => r.finalLoss)).toEqual([2.0, 2.05, 2.0, 2.3, 2.0]);
  });

  it('prints a row per run and the goals; draws both curves per run in the HTML page', () => {
    const runs = paperRuns();
    const s = compareConvergence(runs);
    const text = renderConvergenceText(s);
    const rows = text.split('\n').filter((l) => /^(native|lsp|zero)/.test(l));
    expect(rows).toHaveLength(5);
    expect(rows[1]!.split(/\s{2,}/)).toEqual([
      'lsp',
      'lsp',
      '50',
      '1.8800',
      '+1.6 %',
      '51.9',
      '47.1',
      '55.0',
      '450',
    ]);
    expect(rows[3]!.split(/\s{2,}/)).toEqual([
      'lsp@1GiB',
      'lsp',
      '50',
      '2.1000',
      '+13.5 %',
      'not reached',
      '-',
      '60.0',
      '100',
    ]);
    expect(text).toContain(
      "target held-out loss 1.9000: native's held-out loss at 80 % of its run (step 40)",
    );
    expect(text).toMatch(/^met {4}lsp: time to the target at least 33 % below zero's \(vs zero\)/m);

    const html = renderConvergenceReport(runs, s);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    const series = [...html.matchAll(/<polyline data-series="([^"]*)" points="([^"]*)"/g)];
    // two charts, each with five runs and the target line
    expect(series).toHaveLength(12);
    const zeroBudget = series.filter((m) => m[1] === 'zero@1GiB').map((m) => m[2]!.split(' '));
    expect(zeroBudget.map((p) => p.length)).toEqual([6, 6]);
    // against steps its last point is at the right edge (step 50 is the largest); against time too
    // (150 s is the longest run), and the same loss is drawn at the same height in both charts
    const last = zeroBudget.map((p) => p[5]!.split(',').map(Number));
    expect(last[0]![0]).toBe(last[1]![0]);
    expect(last[0]![1]).toBe(last[1]![1]);
    expect(html).toContain('<td>zero@1GiB</td>');
    expect(html).toMatch(/<li><b>missed<\/b> lsp@1GiB/);
  });

  it('refuses records it cannot compare, naming the file', () => {
    expect(() => parseMetricsJsonl('{"type":"eval"}\nnope\n', 'm.jsonl')).toThrow(
      /^m\.jsonl:2: not valid JSON/,
    );
    const old = '{"type":"eval","mode":"lsp","step":0,"evalLoss":2}\n';
    expect(() => curve('old.jsonl', old)).toThrow(/old\.jsonl: the evaluation at step 0 has no elapsedMs/);
    expect(() => curve('s.jsonl', '{"type":"step","mode":"lsp","step":1}\n')).toThrow(
      /no evaluation records/,
    );
    const mixed = metricsFile('lsp', LSP, seconds(1)) + metricsFile('zero', LSP, seconds(1)).split('\n')[0];
    expect(() => curve('mixed', mixed)).toThrow(/more than one mode \(lsp, zero\)/);
    const runs = paperRuns();
    expect(() => compareConvergence(runs.slice(1))).toThrow(/no native run to take the target loss from/);
    expect(() => compareConvergence([runs[0]!, runs[0]!])).toThrow(/two runs are labelled 'native'/);
    expect(() => compareConvergence(runs, { reference: 'nope' })).toThrow(/no run is labelled 'nope'/);
  });
});
