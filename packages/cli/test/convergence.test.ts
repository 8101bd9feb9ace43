// The convergence experiment's pipeline end to end at toy size, through the same driver the GPU machine
// runs (tools/convergence/run.sh): a tiny random LLaMA saved as a Hugging Face directory (with the
// committed byte-level BPE fixture tokenizer) stands in for the pretrained base model, a few small
// Python files for the fine-tuning sources; make_task.py splits them by file, the real CLI trains every
// mode a few steps, `compare` reads their metrics. Its numbers are checked against the metrics files.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listParameters, parseModelConfig, Rng, writeSafetensors } from '@lsp-offload/core';
import { parseRunArgument } from '../src/compare.js';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const tokenizerFixture = join(repo, 'packages/core/fixtures/hf/tokenizers/gpt2-style');

/** A tiny random LLaMA for the fixture tokenizer (330 ids, `<|endoftext|>` = 0), as a HF directory. */
async function writeTinyModel(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const json = {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: 330,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    hidden_act: 'silu',
    bos_token_id: 0,
    eos_token_id: 0,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json, null, 2));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 0, eos_token_id: 0 }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(tokenizerFixture, f), join(dir, f));
  const rng = new Rng(19);
  const specs = listParameters(parseModelConfig(json, 'tiny'));
  await writeSafetensors(
    join(dir, 'model.safetensors'),
    specs.map((p) => {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: n }, () => (p.role === 'norm' ? 1 : 0.05 * rng.normal()));
      return { name: p.name, dtype: 'F32' as const, shape: p.shape, data };
    }),
  );
}

const OPS = ['x + y', 'x - y', 'x * y', 'max(x, y)', 'min(x, y)', 'x * 2 + y'];

/** Small Python files: documented functions (and a method), one trivial body, one file that does not parse. */
function writeSources(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (let f = 0; f < 12; f++) {
    const name = `mod_${f}.py`;
    names.push(name);
    const fns = [0, 1, 2].map((k) => {
      const op = OPS[(f + k) % OPS.length]!;
      return `def f${f}_${k}(x, y):\n    """Combine x and y."""\n    z = ${op}\n    return z\n`;
    });
    fns.push(
      `class C${f}:\n    def m(self, x):\n        """Half of x."""\n        y = x / 2\n        return y\n`,
    );
    fns.push(`def stub${f}(x):\n    """Not yet."""\n    pass\n`);
    writeFileSync(join(dir, name), fns.join('\n'));
  }
  writeFileSync(join(dir, 'broken.py'), 'def nope(:\n');
  return names;
}

interface EvalRecord {
  type: 'eval';
  mode: string;
  step: number;
  evalLoss: number;
  elapsedMs: number;
  evaluatingMs: number;
}

function readEvals(path: string): EvalRecord[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === 'eval');
}

/** Independently of the compare code: when the loss first reaches the target, linear in training time. */
function secondsToTarget(evals: EvalRecord[], target: number): number | null {
  const t = (e: EvalRecord) => (e.elapsedMs - e.evaluatingMs) / 1000;
  for (let i = 0; i < evals.length; i++) {
    if (evals[i]!.evalLoss > target) continue;
    if (i === 0) return t(evals[0]!);
    const [a, b] = [evals[i - 1]!, evals[i]!];
    return t(a) + ((a.evalLoss - target) / (a.evalLoss - b.evalLoss)) * (t(b) - t(a));
  }
  return null;
}

describe('convergence pipeline (tools/convergence/run.sh) at toy size', () => {
  it('splits the task by file, trains every mode on it and compares the runs from their metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'convergence-'));
    await writeTinyModel(join(dir, 'model'));
    const sources = writeSources(join(dir, 'src', 'pkg'));
    const out = join(dir, 'out');
    const driver = join(repo, 'tools/convergence/run.sh');
    const printed = execFileSync(
      'bash',
      [
        driver,
        out,
        '--base-model',
        join(dir, 'model'),
        '--task-source',
        join(dir, 'src', 'pkg'),
        '--modes',
        'native,lsp,zero,lsp@budget',
        '--steps',
        '4',
        '--batch',
        '2',
        '--seq',
        '96',
        '--lr',
        '3e-3',
        '--rank',
        '8',
        '--nnz',
        '2',
        '--eval-every',
        '2',
        '--eval-batches',
        '1',
        '--train-examples',
        '0',
        '--refit-every',
        '100',
        '--variant',
        'nnz1=--nnz 1 --refit-at-start',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 },
    );
    expect(printed).toMatch(/3\/5 learning rate: (constant 3e-3|\d+ warmup steps, then cosine)/);

    // the task: functions with a docstring and a non-trivial body, files on one side only
    const task = JSON.parse(readFileSync(join(out, 'task', 'task.json'), 'utf8'));
    expect(task.files).toMatchObject({ source: 13, unparsed: 1 });
    const rows = (f: string) =>
      readFileSync(join(out, 'task', f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { prompt: string; response: string });
    const fileOf = (r: { prompt: string }) => /^# (\S+)\n/.exec(r.prompt)![1]!;
    const [train, evaluation] = [rows('train.jsonl'), rows('eval.jsonl')];
    expect(train.length + evaluation.length).toBe(12 * 4);
    const trainFiles = new Set(train.map(fileOf));
    const evalFiles = new Set(evaluation.map(fileOf));
    expect(evalFiles.size).toBeGreaterThan(0);
    expect([...evalFiles].filter((f) => trainFiles.has(f))).toEqual([]);
    expect([...trainFiles, ...evalFiles].sort()).toEqual(sources.map((s) => `pkg/${s}`).sort());
    expect([...evalFiles].sort()).toEqual([...task.eval_files].sort());
    const method = train.find((r) => r.prompt.includes('def m(self, x)'))!;
    expect(method.prompt).toMatch(/^# pkg\/mod_\d+\.py\ndef m\(self, x\):\n {4}"""Half of x\."""\n$/);
    expect(method.response).toBe('    y = x / 2\n    return y\n');
    expect(train.some((r) => r.prompt.includes('stub'))).toBe(false);

    // every run evaluated at the same steps, with wall times
    const names = { native: 'native', lsp: 'lsp', zero: 'zero', 'lsp-budget': 'lsp', 'lsp-nnz1': 'lsp' };
    const evals: Record<string, EvalRecord[]> = {};
    for (const [name, mode] of Object.entries(names)) {
      evals[name] = readEvals(join(out, 'runs', `${name}.jsonl`));
      expect(evals[name]!.map((e) => [e.mode, e.step])).toEqual([0, 2, 4].map((s) => [mode, s]));
      for (const [i, e] of evals[name]!.entries()) {
        expect(e.evaluatingMs).toBeGreaterThanOrEqual(0);
        expect(e.elapsedMs).toBeGreaterThanOrEqual(e.evaluatingMs);
        if (i > 0) expect(e.elapsedMs).toBeGreaterThan(evals[name]![i - 1]!.elapsedMs);
      }
    }
    // the same data, seed and model: every mode starts from the same held-out loss
    for (const name of Object.keys(names)) expect(evals[name]![0]!.evalLoss).toBe(evals.native![0]!.evalLoss);
    expect(readFileSync(join(out, 'logs', 'train-lsp-budget.log'), 'utf8')).toMatch(/GPU memory budget \d/);
    // the variant got its own flags (a check of its random projectors before the first step, one
    // non-zero per row), so it trained differently from the same start
    const refitSteps = (name: string) =>
      readFileSync(join(out, 'runs', `${name}.jsonl`), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((r) => r.type === 'refit')
        .map((r) => r.step);
    expect(refitSteps('lsp')).toEqual([]);
    expect(refitSteps('lsp-nnz1')).toEqual([0]);
    expect(evals['lsp-nnz1']![2]!.evalLoss).not.toBe(evals.lsp![2]!.evalLoss);

    // the comparison, checked against the metrics files
    const summary = JSON.parse(readFileSync(join(out, 'convergence.json'), 'utf8'));
    const budgetLabel = summary.runs[3].label as string;
    expect(budgetLabel).toMatch(/^lsp@\d+MiB$/);
    expect(summary.runs.map((r: { label: string }) => r.label)).toEqual([
      'native',
      'lsp',
      'zero',
      budgetLabel,
      'lsp~nnz1',
    ]);
    const native = evals.native!;
    const target = native[1]!.evalLoss + 0.6 * (native[2]!.evalLoss - native[1]!.evalLoss); // step 3.2 of 4
    expect(summary.target).toBeCloseTo(target, 12);
    expect(summary.commonStep).toBe(4);
    const text = readFileSync(join(out, 'convergence.txt'), 'utf8');
    expect(printed).toContain(text.split('\n')[0]);
    Object.keys(names).forEach((name, i) => {
      const run = summary.runs[i];
      const last = evals[name]![2]!;
      expect(run.finalLoss).toBe(last.evalLoss);
      const seconds = secondsToTarget(evals[name]!, target);
      if (seconds === null) expect(run.crossing).toBeNull();
      else expect(run.crossing.seconds).toBeCloseTo(seconds, 9);
      const row = text.split('\n').find((l) => l.startsWith(`${run.label} `))!;
      expect(row.split(/\s{2,}/).slice(0, 6)).toEqual([
        run.label,
        names[name as keyof typeof names],
        '4',
        last.evalLoss.toFixed(4),
        `${last.evalLoss >= native[2]!.evalLoss ? '+' : '-'}${((100 * Math.abs(last.evalLoss - native[2]!.evalLoss)) / native[2]!.evalLoss).toFixed(1)} %`,
        seconds === null ? 'not reached' : seconds.toFixed(1),
      ]);
    });
    expect(text).toMatch(/^(met|missed|n\/a) +lsp: held-out loss at the common step within 2 % of native's/m);
    expect(text).toMatch(
      new RegExp(`^(met|missed|n/a) +${budgetLabel}: time to the target .*\\(vs zero\\)`, 'm'),
    );
    const html = readFileSync(join(out, 'convergence.html'), 'utf8');
    for (const label of ['native', 'lsp', 'zero', budgetLabel, 'lsp~nnz1'])
      expect(html.match(new RegExp(`<polyline data-series="${label}"`, 'g'))).toHaveLength(2);
    expect(existsSync(join(out, 'results.tar.gz'))).toBe(true);
  }, 300_000);

  it('compare labels runs by label=file or the file name, and names what it cannot read', () => {
    expect(parseRunArgument('lsp@1GiB=/a/b=c.jsonl')).toEqual({ label: 'lsp@1GiB', path: '/a/b=c.jsonl' });
    expect(parseRunArgument('/runs/zero-budget.jsonl')).toEqual({
      label: 'zero-budget',
      path: '/runs/zero-budget.jsonl',
    });
    const dir = mkdtempSync(join(tmpdir(), 'compare-'));
    const old = join(dir, 'old.jsonl');
    writeFileSync(old, '{"type":"eval","mode":"native","step":0,"evalLoss":2}\n');
    const bin = join(repo, 'packages/cli/dist/bin.js');
    const run = (...args: string[]) =>
      execFileSync(process.execPath, [bin, 'compare', ...args], { stdio: 'pipe' });
    expect(() => run(join(dir, 'missing.jsonl'))).toThrow(/cannot read the metrics file .*missing\.jsonl/);
    expect(() => run(old)).toThrow(/old\.jsonl: the evaluation at step 0 has no elapsedMs/);
    expect(() => run(old, '--target', 'low')).toThrow(/--target must be a number, got 'low'/);
  });
});
