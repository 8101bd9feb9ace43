import { describe, expect, it } from 'vitest';
import {
  DEMO_MODEL_CONFIG,
  lineChart,
  niceTicks,
  rankNote,
  rankProblem,
  presetConfig,
  renderBenchReport,
  renderTrainReport,
  tickLabels,
} from '../../src/index.js';

describe('tick labels', () => {
  it('use as many digits as tell the ticks apart', () => {
    // a loss that varies in its fourth digit: once three ticks all read 10.8
    const ticks = niceTicks(10.8121, 10.8127);
    const labels = tickLabels(ticks);
    expect(new Set(labels).size).toBe(ticks.length);
    labels.forEach((l, i) => expect(Math.abs(Number(l) - ticks[i]!)).toBeLessThan(1e-9));
    expect(tickLabels([0, 0.5, 1])).toEqual(['0', '0.5', '1']);
    expect(tickLabels([1e-5, 2e-5])).toEqual(['1.0e-5', '2.0e-5']);
  });

  it('the drawn labels are those labels', () => {
    const svg = lineChart(
      [{ name: 'loss', points: [1, 2, 3].map((x) => [x, 10.8121 + x * 2e-4] as const) }],
      {
        title: 'L',
        xLabel: 'step',
        yLabel: 'loss',
        xIntegers: true,
      },
    );
    const drawn = [...svg.matchAll(/text-anchor="end">([^<]+)</g)].map((m) => m[1]);
    expect(drawn.length).toBeGreaterThan(1);
    expect(new Set(drawn).size).toBe(drawn.length);
  });
});

describe('reports show the run settings', () => {
  it('train report: a settings table from the settings record', () => {
    const html = renderTrainReport([
      {
        type: 'settings',
        model: 'm <dir>',
        mode: 'lsp',
        rank: 64,
        lrSchedule: 'cosine',
        data: ['a.jsonl', 'b.txt'],
      },
      {
        type: 'step',
        step: 1,
        mode: 'lsp',
        loss: 2,
        wallMs: 1,
        tokensPerSecond: 1,
        bytesToHost: 0,
        bytesToDevice: 0,
        gpuBusyMs: null,
        mainThreadBusyMs: 1,
        workerBusyMs: 0,
        waitForUpdatesMs: 0,
        peakGpuBytes: 1,
      },
    ]);
    expect(html).toContain('<th>lrSchedule</th>');
    expect(html).toContain('<td>cosine</td>');
    expect(html).toContain('<td>a.jsonl, b.txt</td>');
    expect(html).toContain('m &#60;dir&#62;');
  });

  it('bench report: its settings, the CPU and the GPU', () => {
    const html = renderBenchReport({
      model: 'demo',
      device: 'gpu x',
      settings: { batch: 2, CPU: 'cpu y', GPU: 'gpu x' },
      results: [],
    });
    expect(html).toMatch(
      /<th>batch<\/th><th>CPU<\/th><th>GPU<\/th><\/tr><tr><td>2<\/td><td>cpu y<\/td><td>gpu x<\/td>/,
    );
  });
});

describe('--rank against the layer sizes', () => {
  it('refuses d above both sides of a layer, notes d above one side', () => {
    const tiny = presetConfig('llama-tiny'); // k/v projections 128 x 256
    expect(rankProblem(tiny, 256)).toBeUndefined();
    expect(rankProblem(tiny, 257)).toBe(
      '--rank 257 exceeds both sides of model.layers.0.self_attn.q_proj.weight [256 x 256]: its compressed gradient would be larger than the layer; use --rank <= 256',
    );
    expect(rankNote(tiny, 200)).toMatch(
      /--rank 200 exceeds the smaller side \(128\) of model\.layers\.0\.self_attn\.k_proj\.weight/,
    );
    expect(rankNote(tiny, 128)).toBeUndefined();
    expect(rankProblem(DEMO_MODEL_CONFIG, 64)).toBeUndefined(); // the demo's d = 64
  });
});
