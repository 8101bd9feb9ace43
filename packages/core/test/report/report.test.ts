// The HTML reports' charts: every drawn coordinate is checked against the linear map written out here,
// on random odd-sized data, and the pages are well-formed and escape what they print.
import { describe, expect, it } from 'vitest';
import { CHART_MARGIN } from '../../src/report/svg-chart.js';
import {
  barChart,
  lineChart,
  niceTicks,
  renderBenchReport,
  renderTrainReport,
  Rng,
} from '../../src/index.js';

function polylines(svg: string): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const m of svg.matchAll(/<polyline data-series="([^"]*)" points="([^"]*)"/g))
    out.set(
      m[1]!,
      m[2]!
        .split(' ')
        .filter(Boolean)
        .map((p) => p.split(',').map(Number) as [number, number]),
    );
  return out;
}

describe('charts', () => {
  it('a line chart maps every point linearly onto the plot area (first/last x at the edges, max y on top)', () => {
    const rng = new Rng(7);
    const W = 517;
    const H = 233;
    const a = Array.from(
      { length: 37 },
      (_, i) => [i * 3 + 5, rng.nextU32() / 2 ** 32 - 0.3] as [number, number],
    );
    const b = Array.from(
      { length: 11 },
      (_, i) => [i * 9 + 8, 2 * (rng.nextU32() / 2 ** 32)] as [number, number],
    );
    const svg = lineChart(
      [
        { name: 'a <&>', points: a },
        { name: 'b', points: [...b, [200, NaN]], dots: true },
      ],
      { title: 'T', xLabel: 'x', yLabel: 'y', width: W, height: H },
    );
    expect(svg).not.toMatch(/a <&>/);
    const lines = polylines(svg);
    const all = [...a, ...b];
    const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
    const [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
    const px = (x: number) =>
      CHART_MARGIN.left + ((x - x0) / (x1 - x0)) * (W - CHART_MARGIN.left - CHART_MARGIN.right);
    const py = (y: number) =>
      H - CHART_MARGIN.bottom - ((y - y0) / (y1 - y0)) * (H - CHART_MARGIN.top - CHART_MARGIN.bottom);
    for (const [name, data] of [
      ['a &#60;&#38;&#62;', a],
      ['b', b],
    ] as const) {
      const drawn = lines.get(name)!;
      expect(drawn.length).toBe(data.length); // the NaN point is left out
      drawn.forEach(([x, y], i) => {
        expect(Math.abs(x - px(data[i]![0]))).toBeLessThanOrEqual(0.051);
        expect(Math.abs(y - py(data[i]![1]))).toBeLessThanOrEqual(0.051);
      });
    }
    expect((svg.match(/<circle /g) ?? []).length).toBe(b.length);
  });

  it('ticks are round, evenly spaced and cover the range', () => {
    const rng = new Rng(3);
    for (let k = 0; k < 50; k++) {
      const lo = (rng.nextU32() / 2 ** 32 - 0.5) * 10 ** ((k % 7) - 2);
      const hi = lo + (rng.nextU32() / 2 ** 32 + 0.01) * 10 ** ((k % 5) - 1);
      const t = niceTicks(lo, hi);
      expect(t.length).toBeGreaterThanOrEqual(2);
      expect(t.length).toBeLessThanOrEqual(11);
      const step = t[1]! - t[0]!;
      const mantissa = step / 10 ** Math.floor(Math.log10(step));
      expect([1, 2, 2.5, 5, 10].some((m) => Math.abs(mantissa - m) < 1e-6)).toBe(true); // 10: 0.00999... read as 1e-2
      for (let i = 1; i < t.length; i++) expect(t[i]! - t[i - 1]!).toBeCloseTo(step, 9);
      expect(t[0]!).toBeGreaterThanOrEqual(lo - 1e-12);
      expect(t[0]! - step).toBeLessThan(lo);
      expect(t[t.length - 1]! + step).toBeGreaterThan(hi);
    }
  });

  it('stacked bars have widths proportional to their values on a shared axis', () => {
    const W = 611;
    const bars = [
      {
        label: 'one',
        segments: [
          { name: 'p', value: 13 },
          { name: 'q', value: 7 },
        ],
      },
      {
        label: 'two',
        segments: [
          { name: 'p', value: 29 },
          { name: 'q', value: 0.5 },
        ],
      },
    ];
    const svg = barChart(bars, { title: 'B', xLabel: 'ms', yLabel: '', width: W });
    const rects = [
      ...svg.matchAll(
        /<rect data-bar="([^"]*)" data-segment="([^"]*)" x="([^"]*)" y="[^"]*" width="([^"]*)"/g,
      ),
    ];
    expect(rects.length).toBe(4);
    const plotWidth = W - 150 - CHART_MARGIN.right;
    const max = 29.5;
    rects.forEach((r, i) => {
      const seg = bars[Math.floor(i / 2)]!.segments[i % 2]!;
      expect(Math.abs(Number(r[4]) - (seg.value / max) * plotWidth)).toBeLessThanOrEqual(0.11);
    });
    // the second segment starts where the first ends
    expect(
      Math.abs(Number(rects[1]![3]) - (Number(rects[0]![3]) + Number(rects[0]![4]))),
    ).toBeLessThanOrEqual(0.11);
  });
});

describe('reports', () => {
  it('a training report draws each step and evaluation and sums them up', () => {
    const steps = Array.from({ length: 23 }, (_, i) => ({
      type: 'step',
      mode: 'lsp',
      step: i + 1,
      loss: 3 - i * 0.05,
      wallMs: 100 + i,
      tokensPerSecond: 1000 + 3 * i,
      bytesToHost: 2 ** 20 * (i % 3),
      bytesToDevice: 2 ** 19,
      gpuBusyMs: 80,
      mainThreadBusyMs: 10,
      workerBusyMs: 20,
      waitForUpdatesMs: 1,
      peakGpuBytes: 5 * 2 ** 20 + i,
    }));
    const evals = [0, 10, 20].map((s) => ({
      type: 'eval',
      step: s,
      evalLoss: 3.1 - s * 0.04,
      accuracy: { exactMatch: s / 40 },
    }));
    const html = renderTrainReport([...evals.slice(0, 1), ...steps, ...evals.slice(1)], 'run <1>');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('run &#60;1&#62;');
    const lines = polylines(html);
    expect(lines.get('train loss')!.length).toBe(23);
    expect(lines.get('eval loss')!.length).toBe(3);
    expect(lines.get('exact match')!.length).toBe(3);
    expect(lines.get('to host')!.length).toBe(23);
    expect(html).toContain('3.0000 -&#62; 1.9000'); // train loss first -> last
    expect(html).toContain('111.0 ms'); // median step (100..122 ms)
  });

  it('a report of a long run (200k steps) renders: no argument list grows with the steps', () => {
    const steps = Array.from({ length: 200_000 }, (_, i) => ({
      type: 'step',
      mode: 'lsp',
      step: i + 1,
      loss: 3 - i * 1e-5,
      wallMs: 100,
      tokensPerSecond: 1000,
      peakGpuBytes: 2 ** 20 * (1 + (i % 7)),
    }));
    const html = renderTrainReport(steps, 'long run');
    expect(polylines(html).get('train loss')!.length).toBe(200_000);
    expect(html).toContain('7.0 MiB'); // the largest peak
  });

  it('a bench report lists every mode, failed ones with their error', () => {
    const result = (mode: string, ms: number) => ({
      mode,
      medianStepMs: ms,
      tokensPerSecond: 4096 / (ms / 1000),
      livePeakGpuBytes: 3 * 2 ** 30,
      predictedPeakBytes: 3.2 * 2 ** 30,
      gpuBusyMsPerStep: ms * 0.9,
      mainThreadBusyMsPerStep: 5,
      workerBusyMsPerStep: 50,
      waitForUpdatesMsPerStep: 3,
      losses: [10.1, 10.2, 10.05],
    });
    const html = renderBenchReport({
      model: 'm',
      device: 'some GPU',
      results: [
        result('native', 1000),
        { ...result('lsp', 1100), budgetBytes: 4 * 2 ** 30 },
        { ...result('zero', NaN), error: 'over <budget>' },
      ],
    });
    expect(html).toContain('lsp (4.00 GiB)');
    expect(html).toContain('over &#60;budget&#62;');
    expect(polylines(html).get('native')!.length).toBe(3);
    expect((html.match(/<rect data-bar="native"/g) ?? []).length).toBeGreaterThan(0);
  });
});
