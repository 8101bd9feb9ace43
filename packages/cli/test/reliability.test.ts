// "Nothing lost, ever", through the real binary: exports never replace what we did not write, output
// targets are checked before training, checkpoints rotate and are never saved diverged, resumes rewrite
// the metrics and apply (or refuse) changed options, one run per checkpoint folder, signals stop
// cleanly with a checkpoint, a failed save keeps the previous one, small data sets and tokenizers
// without eos_token.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bin, cli, writeSmallData, writeSmallModel } from './small-model.js';

let base: string;
let model: string;
let data: string;

/** A short lsp run of the small model on `dataFile`. */
const run = (dataFile: string, steps = 2): string[] => [
  'train',
  '--model',
  model,
  '--data',
  dataFile,
  ...`--steps ${steps} --batch 2 --seq 16 --rank 16 --eval-batches 1 --dtype f32`.split(' '),
];

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'reliability-'));
  model = join(base, 'model');
  await writeSmallModel(model);
  data = join(base, 'train.jsonl');
  writeSmallData(data);
});

describe('data', () => {
  it('a data set too small for a held-out split says so and evaluates nothing (no "eval loss NaN")', () => {
    const tiny = join(base, 'one.jsonl');
    writeSmallData(tiny, 1);
    const r = cli([...run(tiny), '--refit-every', '1']);
    expect(r.stderr).not.toMatch(/lsp-offload:/);
    expect(r.stderr).toMatch(
      /no held-out data: 1 example is too few to hold any out; evaluations are skipped \(give --eval-data\), projector checks measure on training rows/,
    );
    expect(r.stdout).toMatch(/^done: 2 steps of lsp/);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/NaN/);
  });
});

describe('tokenizer', () => {
  it("without eos_token (tokenizer.json alone) takes config.json's eos_token_id; --eos-token says it", async () => {
    const withConfigEos = join(base, 'no-tokenizer-config');
    await writeSmallModel(withConfigEos, { eos_token_id: 2 });
    rmSync(join(withConfigEos, 'tokenizer_config.json'));
    const args = (dir: string) => ['train', '--model', dir, '--data', data, ...run(data, 1).slice(5)];
    const r = cli(args(withConfigEos));
    expect(r.stderr).not.toMatch(/lsp-offload:/);
    expect(r.stdout).toMatch(/^done: 1 steps/);
    const noEos = join(base, 'no-eos-at-all');
    await writeSmallModel(noEos);
    rmSync(join(noEos, 'tokenizer_config.json'));
    expect(cli(args(noEos)).stderr).toMatch(/no end-of-sequence token: .* give --eos-token <token or id>/);
    expect(cli([...args(noEos), '--eos-token', '</s>']).stdout).toMatch(/^done: 1 steps/);
    expect(cli([...args(noEos), '--eos-token', '<nope>']).stderr).toMatch(
      /--eos-token '<nope>' is neither a token of the tokenizer nor a token id/,
    );
  });
});

/** A training run in the background, whose stderr can be waited on. */
function background(args: string[]): {
  child: ChildProcess;
  stderr: () => string;
  waitFor: (pattern: RegExp) => Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
} {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    err += chunk;
    for (const w of waiters.splice(0))
      if (w.pattern.test(err)) w.resolve();
      else waiters.push(w);
  });
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    stderr: () => err,
    waitFor: (pattern) =>
      new Promise<void>((resolve, reject) => {
        if (pattern.test(err)) return resolve();
        waiters.push({ pattern, resolve });
        void exited.then(() => {
          if (!pattern.test(err)) reject(new Error(`exited before ${pattern}:\n${err}`));
        });
      }),
    exited,
  };
}

/** Names, sizes and contents of every file under `dir` (to show nothing was touched). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, name);
    if (statSync(path).isFile()) out[name] = createHash('sha256').update(readFileSync(path)).digest('hex');
    else out[name] = 'dir';
  }
  return out;
}

const steps = (metrics: string): { type: string; step: number; loss: number; lr: number }[] =>
  readFileSync(metrics, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

describe('export (never over files we did not write) and output targets (checked at start)', () => {
  it('refuses the input model directory and folders of other files; replaces its own export only with --force', () => {
    const before = snapshot(model);
    const intoModel = cli([...run(data, 1), '--export', model]);
    expect(intoModel.status).toBe(1);
    expect(intoModel.stderr).toMatch(
      /--export .*: is the input model directory \(--model\); choose a new folder/,
    );
    expect(intoModel.stderr).not.toMatch(/step 1\/1/); // refused before training
    expect(snapshot(model)).toEqual(before);
    const foreign = join(base, 'foreign');
    mkdirSync(join(foreign, 'sub'), { recursive: true });
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    writeFileSync(join(foreign, 'config.json'), '{}');
    const foreignBefore = snapshot(foreign);
    const intoForeign = cli([...run(data, 1), '--export', foreign, '--force']);
    expect(intoForeign.stderr).toMatch(
      /--export .*foreign: is not empty and not an lsp-offload export \(it holds config\.json, notes\.txt, sub\); choose a new or empty folder/,
    );
    expect(snapshot(foreign)).toEqual(foreignBefore);
    const out = join(base, 'export');
    expect(cli([...run(data, 1), '--export', out]).status).toBe(0);
    expect(existsSync(join(out, 'lsp-offload-export.json'))).toBe(true);
    const again = cli([...run(data, 1), '--export', out]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(
      /--export .*export: holds an earlier lsp-offload export; give --force to replace it/,
    );
    expect(again.stderr).not.toMatch(/step 1\/1/);
    expect(cli([...run(data, 1), '--export', out, '--force']).status).toBe(0);
  });

  it('every output target is checked before training starts', () => {
    const file = join(base, 'a-file');
    writeFileSync(file, 'x');
    const refused = (args: string[], message: RegExp) => {
      const r = cli([...run(data, 1), ...args]);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/step 1\/1/);
    };
    refused(['--export', file], /--export .*a-file: exists and is not a folder/);
    refused(['--checkpoint-dir', file], /--checkpoint-dir .*a-file: exists and is not a folder/);
    refused(
      ['--checkpoint-dir', model],
      /--checkpoint-dir .*: holds files that are not lsp-offload checkpoints \(config\.json/,
    );
    refused(
      ['--metrics-out', join(file, 'm.jsonl')],
      /--metrics-out .*a-file\/m\.jsonl: cannot be created: .*a-file is not a folder/,
    );
    refused(['--report', base], /--report .*: is a folder, not a file/);
    const same = join(base, 'missing', 'deeper', 't.json');
    refused(['--trace', same, '--metrics-out', same], /--trace .*t\.json: is also the --metrics-out file/);
  });
});

describe('checkpoints', () => {
  it('keeps the last --keep-checkpoints; a resume takes the newest and rewrites the metrics as one run', () => {
    const dir = join(base, 'keep');
    const metrics = join(dir, 'm.jsonl');
    const first = cli([
      ...run(data, 4),
      '--checkpoint-dir',
      join(dir, 'ckpt'),
      '--save-every',
      '1',
      '--metrics-out',
      metrics,
    ]);
    expect(first.status, first.stderr).toBe(0);
    expect(readdirSync(join(dir, 'ckpt')).sort()).toEqual(['checkpoint-3', 'checkpoint-4']);
    const uninterrupted = steps(metrics).filter((r) => r.type === 'step');
    // resume from the older one: the steps after it are run again, and written once
    const again = cli([
      ...run(data, 4),
      '--resume',
      join(dir, 'ckpt', 'checkpoint-3'),
      '--metrics-out',
      metrics,
    ]);
    expect(again.status, again.stderr).toBe(0);
    const records = steps(metrics);
    expect(records.filter((r) => r.type === 'step').map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect(records.filter((r) => r.type === 'settings')).toHaveLength(1);
    const evals = records.filter((r) => r.type === 'eval').map((r) => r.step);
    expect(new Set(evals).size).toBe(evals.length);
    expect(records.filter((r) => r.type === 'step').map((r) => r.loss)).toEqual(
      uninterrupted.map((r) => r.loss),
    );
    const newest = cli([
      ...run(data, 5),
      '--resume',
      join(dir, 'ckpt'),
      '--keep-checkpoints',
      '3',
      '--checkpoint-dir',
      join(dir, 'ckpt'),
    ]);
    expect(newest.stderr).toMatch(/resumed from .*checkpoint-4 at step 4/);
    expect(readdirSync(join(dir, 'ckpt')).sort()).toEqual(['checkpoint-3', 'checkpoint-4', 'checkpoint-5']);
  });

  it('never saves a diverged model: the save finds the non-finite weights and names the last good checkpoint', () => {
    const ckpt = join(base, 'diverge', 'ckpt');
    expect(cli([...run(data, 2), '--checkpoint-dir', ckpt, '--save-every', '1']).status).toBe(0);
    // 1e38 times a step of order one overflows f32: the weights become infinite at step 3 (lsp's D
    // travels in units of the learning rate, so the learning rate itself must overflow them)
    const r = cli([
      ...run(data, 4),
      '--resume',
      ckpt,
      '--checkpoint-dir',
      ckpt,
      '--save-every',
      '1',
      '--lr',
      '1e38',
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /not saving the checkpoint of step 3: \d+ weights are not finite \((model|lm_head)[\w.]+ \d+.*\): the run diverged; the last good checkpoint is .*checkpoint-2 \(step 2\): resume from it with a lower --lr/,
    );
    expect(readdirSync(ckpt).sort()).toEqual(['checkpoint-1', 'checkpoint-2']);
  });

  it('a resume applies a changed --lr (and says so) and refuses options that cannot change, naming the saved value', () => {
    const dir = join(base, 'resume-options');
    const metrics = join(dir, 'm.jsonl');
    expect(
      cli([...run(data, 2), '--lr', '1e-3', '--checkpoint-dir', join(dir, 'ckpt'), '--metrics-out', metrics])
        .status,
    ).toBe(0);
    const resumed = cli([
      ...run(data, 3),
      '--resume',
      join(dir, 'ckpt'),
      '--lr',
      '2e-4',
      '--metrics-out',
      metrics,
    ]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resume: --lr changed from 0\.001 to 0\.0002/);
    expect(
      steps(metrics)
        .filter((r) => r.type === 'step')
        .map((r) => r.lr),
    ).toEqual([1e-3, 1e-3, 2e-4]);
    const refused = cli([
      ...run(data, 3),
      '--resume',
      join(dir, 'ckpt'),
      '--rank',
      '8',
      '--batch',
      '4',
      '--dtype',
      'f16',
    ]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(
      /cannot change on resume: --rank 8 \(saved: 16\), --dtype f16 \(saved: f32\), --batch 4 \(saved: 2\); leave them out or give the saved values/,
    );
  });
});

describe('runs on one checkpoint directory', () => {
  it('a second run is refused while the first holds the lock; a killed run leaves a stale lock the next run takes', async () => {
    const ckpt = join(base, 'locked');
    const first = background([...run(data, 100_000), '--checkpoint-dir', ckpt, '--save-every', '1000']);
    await first.waitFor(/step 1\//);
    const second = cli([...run(data, 1), '--checkpoint-dir', ckpt]);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(
      new RegExp(
        `--checkpoint-dir .*locked: in use by another run \\(pid ${first.child.pid} on ${hostname()}, since `,
      ),
    );
    first.child.kill('SIGKILL');
    await first.exited;
    const third = cli([...run(data, 1), '--checkpoint-dir', ckpt]);
    expect(third.status, third.stderr).toBe(0);
    expect(third.stderr).toMatch(
      new RegExp(`took over a stale lock of pid ${first.child.pid} \\(no longer running\\)`),
    );
    expect(readdirSync(ckpt)).toEqual(['checkpoint-1']);
  });
});

describe('signals', () => {
  it('SIGINT finishes the step, saves a checkpoint, says so and exits 130; the run resumes from it', async () => {
    const ckpt = join(base, 'sigint');
    const r = background([...run(data, 100_000), '--checkpoint-dir', ckpt, '--save-every', '1000']);
    await r.waitFor(/step 2\//);
    r.child.kill('SIGINT');
    const { code } = await r.exited;
    expect(code).toBe(130);
    const err = r.stderr();
    expect(err).toMatch(
      /SIGINT: stopping after this step and saving a checkpoint \(Ctrl-C again to exit at once\)/,
    );
    const step = Number(/saved checkpoint at step (\d+)/.exec(err)![1]);
    expect(err).toMatch(new RegExp(`stopped by SIGINT at step ${step}; resume with --resume ${ckpt}`));
    expect(existsSync(join(ckpt, `checkpoint-${step}`, 'checkpoint.json'))).toBe(true);
    expect(existsSync(join(ckpt, 'lsp-offload.lock'))).toBe(false);
    const resumed = cli([...run(data, step + 1), '--resume', ckpt]);
    expect(resumed.stdout).toMatch(/^done: 1 steps/);
  });

  it('SIGTERM does the same and exits 143; a second Ctrl-C exits at once', async () => {
    const term = background([...run(data, 100_000), '--checkpoint-dir', join(base, 'sigterm')]);
    await term.waitFor(/step 1\//);
    term.child.kill('SIGTERM');
    expect((await term.exited).code).toBe(143);
    expect(term.stderr()).toMatch(/SIGTERM: stopping after this step[\s\S]*saved checkpoint at step \d+/);
    // longer steps (384 tokens): the second signal comes well before the first step could end and save
    const twice = background([
      ...run(data, 100_000),
      '--checkpoint-dir',
      join(base, 'twice'),
      '--batch',
      '8',
      '--seq',
      '48',
    ]);
    await twice.waitFor(/step 1\//);
    twice.child.kill('SIGINT');
    await twice.waitFor(/SIGINT: stopping/);
    twice.child.kill('SIGINT');
    expect((await twice.exited).code).toBe(130);
    expect(twice.stderr()).toMatch(/second SIGINT: exiting now/);
    expect(existsSync(join(base, 'twice', 'lsp-offload.lock'))).toBe(false);
  });
});

describe('adapter limits', () => {
  it("GPT-2 small's 154 MB token table (over llvmpipe's 128 MiB per binding) plans and trains in row blocks", () => {
    const dir = join(base, 'gpt2-wide');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        model_type: 'gpt2',
        vocab_size: 50257,
        n_embd: 768,
        n_layer: 1,
        n_head: 12,
        n_positions: 64,
      }),
    );
    const shape = ['--model', dir, '--batch', '1', '--seq', '8', '--dtype', 'f32'];
    const plan = cli(['plan', ...shape, '--mode', 'native']);
    expect(plan.status, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(
      /Adapter limits \(.+\): [\d.]+ MiB per storage binding.*\n {2}fit \(token tables/,
    );
    const bench = cli([
      'bench',
      ...shape,
      '--modes',
      'native,lsp',
      '--rank',
      '16',
      '--steps',
      '1',
      '--warmup',
      '0',
    ]);
    expect(bench.stderr).not.toMatch(/lsp-offload:|validation|Binding size/);
    const losses = [...bench.stderr.matchAll(/step 1\/1: [\d.]+ ms, loss ([\d.]+)/g)].map((m) =>
      Number(m[1]),
    );
    expect(losses).toHaveLength(2);
    // a random model's loss is about ln(vocab) = 10.8
    for (const loss of losses) expect(Math.abs(loss - Math.log(50257))).toBeLessThan(0.5);
  });

  it('a --batch the adapter cannot run is refused before anything is recorded, naming the limit', () => {
    const wide = cli(['train', '--batch', '66000', '--seq', '19', '--steps', '1']);
    expect(wide.status).toBe(1);
    expect(wide.stderr).toMatch(
      /this run does not fit the adapter \(.+\): .+ takes [\d.]+ MiB at --batch 66000 x --seq 19, over the adapter's maxStorageBufferBindingSize [\d.]+ MiB: lower --batch or --seq \(at most about \d+ tokens per step\)/,
    );
    expect(wide.stderr).not.toMatch(/validation|Binding size|step 1\//);
    const plan = cli(['plan', '--batch', '66000', '--seq', '19']);
    expect(plan.status).toBe(1);
    expect(plan.stdout).toMatch(/\n {2}OVER: .+ takes [\d.]+ MiB at --batch 66000 x --seq 19/);
    const many = cli([...run(data, 1).slice(0, 5), '--batch', '70000', '--seq', '2', '--rank', '16']);
    expect(many.status).toBe(1);
    expect(many.stderr).toMatch(
      /--batch 70000: attention runs one workgroup row per sequence, at most 65535 \(the adapter's maxComputeWorkgroupsPerDimension\)/,
    );
    expect(many.stderr).not.toMatch(/validation|exceeds 65535/);
  });
});
