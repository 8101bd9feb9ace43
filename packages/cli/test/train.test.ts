import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseModes } from '../src/bench.js';
import { parseSize } from '../src/size.js';
import { trainDefaults } from '../src/flags.js';

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

describe('lsp-offload train', () => {
  it('runs a short demo, writing one JSON line per step and per evaluation', () => {
    const metrics = join(mkdtempSync(join(tmpdir(), 'train-')), 'm.jsonl');
    const out = execFileSync(
      process.execPath,
      [
        bin,
        'train',
        '--steps',
        '3',
        '--eval-every',
        '3',
        '--eval-batches',
        '1',
        '--batch',
        '4',
        '--no-progress',
        '--metrics-out',
        metrics,
        '--report',
        join(dirname(metrics), 'report.html'),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    expect(out).toMatch(/^done: 3 steps of lsp in [\d.]+ s; train loss [\d.]+ -> [\d.]+; eval loss/);
    const report = readFileSync(join(dirname(metrics), 'report.html'), 'utf8');
    expect(report).toMatch(/<polyline data-series="train loss" points="(\S+ ){2}\S+"/); // 3 steps
    expect(out).toMatch(/peak GPU memory [\d.]+ \w+ live \(planned [\d.]+ \w+\), [\d.]+ \w+ held/);
    const lines = readFileSync(metrics, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.type)).toEqual(['settings', 'eval', 'step', 'step', 'step', 'eval']);
    // (llvmpipe has shader-f16: mixed precision by default, GradScaler's initial scale)
    expect(lines[0]).toMatchObject({
      model: 'demo',
      mode: 'lsp',
      rank: 64,
      batch: 4,
      steps: 3,
      precision: 'mixed',
    });
    expect(report).toMatch(/<polyline data-series="log2 loss scale" points="(\S+ ){2}\S+"/);
    lines.shift();
    for (const l of lines.filter((x) => x.type === 'step')) {
      expect(l.mode).toBe('lsp');
      expect(l.loss).toBeGreaterThan(0);
      expect(l.tokensPerSecond).toBeGreaterThan(0);
      expect(l.bytesToHost).toBeGreaterThan(0);
      expect(l.bytesToDevice).toBeGreaterThan(0);
      expect(l.peakGpuBytes).toBeGreaterThan(0);
      expect(l).toMatchObject({ lossScale: 2 ** 16, nonFiniteGradients: false, skippedSteps: 0 });
    }
    expect(lines[4].accuracy.tokens).toBeGreaterThan(0);
  });

  it('saves a checkpoint, resumes it, exports a HF directory and writes a trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'train-ckpt-'));
    const common = ['train', '--batch', '4', '--eval-batches', '1', '--eval-every', '100', '--no-progress'];
    execFileSync(
      process.execPath,
      [
        bin,
        ...common,
        '--steps',
        '2',
        '--checkpoint-dir',
        join(dir, 'ckpt'),
        '--trace',
        join(dir, 'trace.json'),
        '--trace-step',
        '2',
      ],
      { stdio: 'pipe' },
    );
    const manifest = JSON.parse(readFileSync(join(dir, 'ckpt', 'checkpoint-2', 'checkpoint.json'), 'utf8'));
    expect(manifest.step).toBe(2);
    const trace = JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8'));
    const names = trace.traceEvents.map((e: { name: string }) => e.name);
    expect(names).toContain('record forward L0');
    expect(names.some((n: string) => n.startsWith('AdamW'))).toBe(true);
    const out = execFileSync(
      process.execPath,
      [bin, ...common, '--steps', '3', '--resume', join(dir, 'ckpt'), '--export', join(dir, 'export')],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    expect(out).toMatch(/^done: 1 steps of lsp/);
    const config = JSON.parse(readFileSync(join(dir, 'export', 'config.json'), 'utf8'));
    expect(config.model_type).toBe('llama');
    expect(readFileSync(join(dir, 'export', 'model.safetensors')).length).toBeGreaterThan(1000);
  });

  it('rejects a bad option with a message naming it', () => {
    expect(() => execFileSync(process.execPath, [bin, 'train', '--mode', 'fast'], { stdio: 'pipe' })).toThrow(
      /--mode must be one of lsp, zero, native, got 'fast'/,
    );
    expect(() =>
      execFileSync(process.execPath, [bin, 'train', '--model', '/nonexistent'], { stdio: 'pipe' }),
    ).toThrow(/--data <file> is required/);
  });

  it('has model-dependent defaults', () => {
    expect(trainDefaults('demo').lr).toBe('3e-3');
    expect(trainDefaults('/some/model').lr).toBe('1e-5');
  });
});

describe('option parsing', () => {
  it('parses sizes', () => {
    expect(parseSize('4GiB')).toBe(4 * 2 ** 30);
    expect(parseSize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseSize('24GB')).toBe(24e9);
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(() => parseSize('lots')).toThrow(/'lots' is not a size/);
  });

  it('bench writes step times, ratios, predicted vs measured peaks and where the time went', () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-'));
    const text = execFileSync(
      process.execPath,
      [
        bin,
        'bench',
        '--model',
        'demo',
        '--steps',
        '1',
        '--warmup',
        '1',
        '--modes',
        'native,lsp',
        '--out',
        out,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    expect(text).toMatch(/lsp \/ native step time: [\d.]+/);
    expect(text).toMatch(/where the time went/);
    const json = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as {
      results: {
        mode: string;
        medianStepMs: number;
        peakGpuBytes: number;
        livePeakGpuBytes: number;
        predictedPeakBytes: number;
        predictedFootprintBytes: number;
        mainThreadBusyMsPerStep: number;
        error?: string;
      }[];
    };
    expect(json.results.map((r) => r.mode)).toEqual(['native', 'lsp']);
    for (const r of json.results) {
      expect(r.error).toBeUndefined();
      expect(r.medianStepMs).toBeGreaterThan(0);
      expect(r.mainThreadBusyMsPerStep).toBeGreaterThan(0);
      // without a budget the pool keeps what it allocated: the planner predicts that footprint for the
      // worst timing (lsp's in-flight steps and uploads vary from run to run: 3-6 % below it measured)
      expect(r.peakGpuBytes).toBeLessThanOrEqual(r.predictedFootprintBytes * 1.02);
      expect(r.peakGpuBytes).toBeGreaterThan(r.predictedFootprintBytes * 0.9);
      // the planned live peak is a worst case over timing-dependent in-flight buffers
      expect(r.livePeakGpuBytes).toBeLessThanOrEqual(r.predictedPeakBytes * 1.02);
      expect(r.livePeakGpuBytes).toBeGreaterThan(r.predictedPeakBytes * 0.8);
    }
    expect(readFileSync(join(out, 'bench.html'), 'utf8')).toMatch(/<rect data-bar="lsp"/);
    expect(readFileSync(join(out, 'bench.txt'), 'utf8')).toMatch(/live MiB \(planned\)/);
    // the offload path: lsp's critical path, its rings' measured GB/s and the bytes each way by kind
    expect(text).toMatch(/offload path per step/);
    expect(text).toMatch(
      /^lsp +- +[\d.]+ +[\d.]+ \/ [\d.]+ \/ [\d.]+ \((download|cpu|upload)\) +[\d.]+ \/ [\d.]+$/m,
    );
    expect(text).toMatch(
      /^lsp +- +S [\d.]+ \w+, gradients [\d.]+ \w+, embedding rows [\d.]+ \w+, headers [\d.]+ \w+ \| D [\d.]+ \w+, parameters [\d.]+ \w+$/m,
    );
    const lsp = (
      json.results as {
        mode: string;
        offload?: { criticalPathMs: number; transferGBps: { down: number } };
        cpuStepTimingPerStep?: Record<string, number>;
      }[]
    ).find((r) => r.mode === 'lsp')!;
    // the CPU steps' wall time split by the workers' clock (native has none)
    expect(text).toMatch(
      /^lsp +wall +[\d.]+ +start +[\d.]+ +span +[\d.]+ +notice +[\d.]+ +threads busy +[\d.]+ +\([\d.]+ CPU steps\)$/m,
    );
    expect(text).not.toMatch(/^native +wall /m);
    const cpu = lsp.cpuStepTimingPerStep!;
    expect(cpu['steps']).toBeGreaterThan(0);
    expect(cpu['startLatencyMs']! + cpu['workerSpanMs']! + cpu['noticeLatencyMs']!).toBeCloseTo(
      cpu['wallMs']!,
      6,
    );
    expect(lsp.offload!.criticalPathMs).toBeGreaterThan(0);
    expect(lsp.offload!.transferGBps.down).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'bench.html'), 'utf8')).toMatch(/Offload path per step/);
  });

  it('parses bench modes with budgets', () => {
    expect(parseModes('lsp:4GiB,zero:4GiB,native')).toEqual([
      { mode: 'lsp', budgetBytes: 4 * 2 ** 30 },
      { mode: 'zero', budgetBytes: 4 * 2 ** 30 },
      { mode: 'native' },
    ]);
    expect(() => parseModes('lsp,turbo')).toThrow(/unknown mode 'turbo'/);
  });
});
