// The commands as the README documents them, through the real binary: --version, unknown commands, plan
// and bench on the same --model values, plain step lines when stderr is not a terminal (--log-every),
// the fine-tuning flags end to end (metrics, checkpoint, report, export dtype) and their validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '@lsp-offload/core';
import { cli, fixtures, writeSmallData, writeSmallModel } from './small-model.js';

const version = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** A one-step lsp run of the small f16 model on `dataFile`. */
const smallRun = (dataFile: string): string[] => [
  'train',
  '--model',
  f16Model,
  '--data',
  dataFile,
  ...'--steps 1 --batch 2 --seq 16 --rank 16 --eval-batches 1'.split(' '),
];

let base: string;
/** A random LLaMA saved in f16 with the llama-style tokenizer, and a small jsonl data set for it. */
let f16Model: string;
let data: string;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'commands-'));
  f16Model = join(base, 'model-f16');
  await writeSmallModel(f16Model);
  data = join(base, 'train.jsonl');
  writeSmallData(data);
});
afterAll(() => undefined);

describe('commands as documented', () => {
  it('--version prints the version; a mistyped command is named, with the closest one', () => {
    expect(cli(['--version']).stdout.trim()).toBe(version);
    const r = cli(['trian']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /unknown command 'trian' \(commands: info, train, bench, compare, plan, tokenize, grads, generate\); did you mean 'train'\?/,
    );
  });

  it('plan and bench accept presets and model directories alike', () => {
    const dir = join(fixtures, 'llama-gqa');
    expect(cli(['plan', '--model', 'llama-tiny', '--rank', '64']).stdout).toMatch(
      /^llama-tiny: llama, [\d.]+M parameters, 4 layers/,
    );
    expect(cli(['plan', '--model', dir, '--rank', '8']).stdout).toMatch(
      /llama-gqa: llama, 0\.0M parameters, 2 layers/,
    );
    const benchOut = join(base, 'bench');
    const bench = cli([
      'bench',
      '--model',
      dir,
      '--modes',
      'native',
      '--steps',
      '1',
      '--warmup',
      '0',
      '--batch',
      '1',
      '--seq',
      '8',
      '--rank',
      '8',
      '--profile-kernels',
      '--out',
      benchOut,
    ]);
    expect(bench.stderr).not.toMatch(/lsp-offload:/);
    expect(bench.stdout).toMatch(/on GPU .+, CPU .+ \(\d+ cores\)/);
    // the per-kernel-family table, in the text and the HTML
    expect(readFileSync(join(benchOut, 'bench.txt'), 'utf8')).toMatch(
      /GPU time by kernel family, native \(one timed pass per dispatch: shares, not step time\)\n\s+kernel family\s+dispatches\s+GPU ms\s+share\n[\s\S]*matmul\.tiled\s+\d+/,
    );
    const html = readFileSync(join(benchOut, 'bench.html'), 'utf8');
    expect(html).toContain('<th>kernel family</th>');
    expect(html).toMatch(/<th>CPU<\/th><th>GPU<\/th>/);
    const wrong = cli(['bench', '--model', 'no-such-thing']);
    expect(wrong.stderr).toMatch(
      /--model 'no-such-thing' is neither a preset \(demo, llama-tiny, .*\) nor a model directory/,
    );
    expect(cli(['plan', '--model', 'llama-tiny', '--rank', '300']).stderr).toMatch(
      /--rank 300 exceeds both sides of/,
    );
  });

  it('prints a plain line per step when stderr is not a terminal, every --log-every steps', () => {
    const every = cli(['train', '--steps', '3', '--batch', '2', '--eval-batches', '1']);
    // (mixed precision by default where the adapter has shader-f16, as llvmpipe has)
    expect(every.stderr).toMatch(/step 1\/3: loss [\d.]+, lr 0\.003\d*, loss scale 2\^16, \d+ tok\/s/);
    const f32 = cli(['train', '--steps', '1', '--batch', '2', '--eval-batches', '1', '--precision', 'f32']);
    expect(f32.stderr).toMatch(/step 1\/1: loss [\d.]+, lr 0\.003\d*, \d+ tok\/s/);
    expect(every.stderr).toMatch(/step 3\/3:/);
    const sparse = cli(['train', '--steps', '3', '--batch', '2', '--eval-batches', '1', '--log-every', '2']);
    expect(sparse.stderr).not.toMatch(/step 1\/3:/);
    expect(sparse.stderr).toMatch(/step 2\/3:[^\n]*\n(.|\n)*step 3\/3:/);
  });

  it('the fine-tuning flags reach the steps, the checkpoint, the report and the export', () => {
    const out = join(base, 'run');
    const r = cli([
      'train',
      '--model',
      f16Model,
      '--data',
      data,
      '--steps',
      '4',
      '--batch',
      '2',
      '--seq',
      '16',
      '--rank',
      '16',
      '--dtype',
      'f32',
      '--lr',
      '1e-3',
      '--warmup-steps',
      '1',
      '--lr-schedule',
      'linear',
      '--weight-decay',
      '0.01',
      '--max-grad-norm',
      '1',
      '--grad-accum',
      '2',
      '--eval-batches',
      '1',
      '--metrics-out',
      join(out, 'm.jsonl'),
      '--report',
      join(out, 'r.html'),
      '--checkpoint-dir',
      join(out, 'ckpt'),
      '--export',
      join(out, 'export'),
    ]);
    expect(r.stderr).not.toMatch(/lsp-offload:/);
    const records = readFileSync(join(out, 'm.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records[0]).toMatchObject({
      type: 'settings',
      mode: 'lsp',
      rank: 16,
      batch: 2,
      gradAccum: 2,
      seqLen: 16,
      dtype: 'f32',
      lr: 1e-3,
      lrSchedule: 'linear',
      warmupSteps: 1,
      weightDecay: 0.01,
      maxGradNorm: 1,
      data: [data],
    });
    const steps = records.filter((x) => x.type === 'step');
    // transformers' linear schedule with 1 warmup step over 4: 0, 1, 2/3, 1/3 of lr
    const want = [0, 1e-3, 2e-3 / 3, 1e-3 / 3];
    steps.forEach((s, i) => expect(Math.abs(s.lr - want[i]!)).toBeLessThan(1e-12));
    expect(steps.every((s) => s.microBatches === 2 && s.gradNorm > 0 && s.tokens === 2 * 2 * 16)).toBe(true);
    // evaluations come within a short run (default: every steps / 3, at least once a third)
    expect(records.filter((x) => x.type === 'eval').map((x) => x.step)).toEqual([0, 1, 2, 3, 4]);
    const manifest = JSON.parse(readFileSync(join(out, 'ckpt', 'checkpoint-4', 'checkpoint.json'), 'utf8'));
    expect(manifest.options).toMatchObject({
      lrSchedule: 'linear',
      warmupSteps: 1,
      totalSteps: 4,
      weightDecay: 0.01,
      maxGradNorm: 1,
      gradAccum: 2,
    });
    const html = readFileSync(join(out, 'r.html'), 'utf8');
    expect(html).toContain('<th>maxGradNorm</th>');
    // the export keeps the input's f16 although the GPU held f32
    const exported = JSON.parse(readFileSync(join(out, 'export', 'config.json'), 'utf8'));
    expect(exported.dtype ?? exported.torch_dtype).toBe('float16');
  });

  it('--export-dtype overrides the input dtype', async () => {
    const out = join(base, 'run32');
    const r = cli([...smallRun(data), '--export', join(out, 'export'), '--export-dtype', 'f32']);
    expect(r.stderr).not.toMatch(/lsp-offload:/);
    const file = await SafetensorsFile.open(join(out, 'export', 'model.safetensors'));
    try {
      expect(file.info('model.embed_tokens.weight').dtype).toBe('F32');
    } finally {
      await file.close();
    }
  });

  it('bad fine-tuning flags are named; data errors name a flag that exists', () => {
    const common = ['train', '--steps', '1'];
    expect(cli([...common, '--lr-schedule', 'step']).stderr).toMatch(
      /--lr-schedule must be one of constant, linear, cosine, got 'step'/,
    );
    expect(cli([...common, '--grad-accum', '0']).stderr).toMatch(
      /--grad-accum must be an integer >= 1, got '0'/,
    );
    expect(cli([...common, '--max-grad-norm', '-1']).stderr).toMatch(
      /--max-grad-norm must be a number >= 0, got '-1'/,
    );
    expect(cli([...common, '--warmup-steps', 'x']).stderr).toMatch(/--warmup-steps must be an integer >= 0/);
    expect(cli([...common, '--export-dtype', 'f8']).stderr).toMatch(
      /--export-dtype must be one of f32, f16, bf16/,
    );
    const bad = join(base, 'bad.jsonl');
    writeFileSync(bad, `${readFileSync(data, 'utf8')}{"prompt": 3}\n`);
    const args = smallRun(bad);
    const stopped = cli(args);
    expect(stopped.stderr).toMatch(/use --invalid-lines skip/);
    expect(cli(['train', '--help']).stdout).toMatch(/--invalid-lines <error\|skip>/);
    const skipped = cli([...args, '--invalid-lines', 'skip']);
    expect(skipped.stderr).not.toMatch(/lsp-offload:/);
    expect(skipped.stderr).toMatch(/skipped 1 invalid line/);
  });
});
