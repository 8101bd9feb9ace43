// The mixed-precision table of the root README in one run: our native, lsp and zero modes in mixed precision
// on the DeepSeek-Coder-1.3B shape (4 x 1024, f16 weights, d 1280, r 4), PyTorch bf16 eager on the same shape
// (model_torch.py, when python3 with torch, transformers and a GPU is there), the ratios against the goals,
// and the planned peaks of 1.3B lsp at 1 x 1024 (goal 3.2 GiB) and 6.7B lsp at 4 x 1024 (goal 16 GiB).
// Usage: node bench/mixed-precision.mjs <outDir> [--small]   (after building core and cli)
// --small (and any CPU adapter): llama-tiny at 2 x 64 and no PyTorch, to check the script end to end.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpuContext, MODEL_PRESETS } from '../dist/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const cli = join(here, '../../cli/dist/bin.js');
const args = process.argv.slice(2);
const outDir = args.find((a) => !a.startsWith('--'));
if (!outDir) throw new Error('usage: node bench/mixed-precision.mjs <outDir> [--small]');
mkdirSync(outDir, { recursive: true });
const ctx = await GpuContext.create();
const device = ctx.report.description || ctx.report.device;
const small = args.includes('--small') || /llvmpipe|lavapipe|swiftshader/i.test(device);
ctx.destroy();

const shape = small
  ? { preset: 'llama-tiny', batch: 2, seq: 64, rank: 64, steps: 2 }
  : { preset: 'deepseek-coder-1.3b', batch: 4, seq: 1024, rank: 1280, steps: 4 };
const GOALS = {
  nativeVsTorch: 0.5,
  lspTokensPerSecond: 10_500,
  lspOverNative: 1.1,
  plan13b: 3.2,
  plan67b: 16,
};

/** Runs a command, echoing it; its stdout, and whether it exited 0. */
function run(title, cmd, cmdArgs, echo = true) {
  console.log(`\n=== ${title}\n${[cmd, ...cmdArgs].join(' ')}`);
  const r = spawnSync(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (echo) process.stdout.write(r.stdout ?? '');
  if (r.status !== 0) console.log(`${title}: exit ${r.status}`);
  return { ok: r.status === 0, stdout: r.stdout ?? '' };
}

// ours: the three modes one after another in one process
const ours = join(outDir, 'ours');
run('ours: native, lsp, zero in mixed precision', process.execPath, [
  cli,
  'bench',
  ...['--model', shape.preset, '--batch', String(shape.batch), '--seq', String(shape.seq)],
  ...['--dtype', 'f16', '--precision', 'mixed', '--rank', String(shape.rank), '--nnz', '4'],
  ...['--modes', 'native,lsp,zero', '--steps', String(shape.steps), '--warmup', '1', '--no-robustness'],
  ...['--out', ours],
]);

// PyTorch bf16 eager on the same shape
let torch;
const hasTorch =
  !small &&
  spawnSync('python3', ['-c', 'import torch, transformers; assert torch.cuda.is_available()'], {
    stdio: 'ignore',
  }).status === 0;
if (hasTorch) {
  const config = join(outDir, `${shape.preset}.config.json`);
  writeFileSync(config, JSON.stringify(MODEL_PRESETS[shape.preset].json));
  const torchDir = join(outDir, 'torch-bf16');
  mkdirSync(torchDir, { recursive: true });
  const args = [join(here, 'model_torch.py'), torchDir, config, String(shape.batch), String(shape.seq)];
  if (run('PyTorch eager bf16', 'python3', [...args, '--dtype', 'bf16']).ok)
    torch = JSON.parse(readFileSync(join(torchDir, 'model_torch_bf16.json'), 'utf8'));
}

// the planned peaks against the memory goals (plan exits 1 over budget; its JSON is there either way)
function plan(model, batch, budget, rank, nnz) {
  const { stdout } = run(
    `plan ${model} lsp ${batch} x 1024 under ${budget}`,
    process.execPath,
    [
      cli,
      'plan',
      ...['--model', model, '--mode', 'lsp', '--batch', String(batch), '--seq', '1024'],
      ...['--dtype', 'f16', '--precision', 'mixed', '--rank', String(rank), '--nnz', String(nnz)],
      ...['--gpu-memory', budget, '--json'],
    ],
    false,
  );
  try {
    return JSON.parse(stdout);
  } catch {
    return undefined;
  }
}
const plans = [
  { what: '1.3B lsp 1 x 1024', goal: GOALS.plan13b, p: plan('deepseek-coder-1.3b', 1, '3.2GiB', 1280, 4) },
  { what: '6.7B lsp 4 x 1024', goal: GOALS.plan67b, p: plan('deepseek-coder-6.7b', 4, '16GiB', 2048, 8) },
];

let bench;
try {
  bench = JSON.parse(readFileSync(join(ours, 'bench.json'), 'utf8'));
} catch {
  bench = { results: [] };
}
const by = (m) => bench.results.find((r) => r.mode === m && !r.error);
const native = by('native');
const lsp = by('lsp');
const GiB = 2 ** 30;
const lines = [
  `${shape.preset}, ${shape.batch} x ${shape.seq}, f16 weights, mixed precision, on ${device} (${new Date().toISOString().slice(0, 10)})`,
  '| mode | step | tokens/s | vs PyTorch bf16 | vs native | loss scale, skipped | GPU peak: measured / planned |',
  '|---|---|---|---|---|---|---|',
];
for (const r of bench.results) {
  if (r.error) {
    lines.push(`| ${r.mode} | failed: ${r.error} |`);
    continue;
  }
  lines.push(
    `| ${r.mode} | ${r.medianStepMs.toFixed(0)} ms | ${r.tokensPerSecond.toFixed(0)} | ` +
      `${torch ? (r.tokensPerSecond / torch.tokensPerSecond).toFixed(3) : '-'} | ` +
      `${native ? (r.medianStepMs / native.medianStepMs).toFixed(2) : '-'} | ${r.lossScale}, ${r.skippedSteps} | ` +
      `${(r.peakGpuBytes / GiB).toFixed(2)} / ${(r.predictedFootprintBytes / GiB).toFixed(2)} GiB |`,
  );
}
if (torch)
  lines.push(
    `| PyTorch bf16 eager | ${torch.medianStepMs.toFixed(0)} ms | ${torch.tokensPerSecond.toFixed(0)} | 1 | - | - | ${(torch.peakMemoryBytes / GiB).toFixed(2)} GiB |`,
  );
lines.push('', 'Goals:');
if (native && torch)
  lines.push(
    `- native >= ${GOALS.nativeVsTorch}x PyTorch: ${(native.tokensPerSecond / torch.tokensPerSecond).toFixed(3)}x`,
  );
if (lsp) lines.push(`- lsp >= ${GOALS.lspTokensPerSecond} tokens/s: ${lsp.tokensPerSecond.toFixed(0)}`);
if (lsp && native)
  lines.push(
    `- lsp / native <= ${GOALS.lspOverNative}: ${(lsp.medianStepMs / native.medianStepMs).toFixed(2)}`,
  );
for (const { what, goal, p } of plans)
  if (p)
    lines.push(
      `- ${what} fits ${goal} GiB (plan): ${(p.peakBytes / GiB).toFixed(2)} GiB at '${p.peakPhase}'` +
        ` (${p.peakBytes <= goal * GiB ? 'met' : `over by ${((p.peakBytes - goal * GiB) / 2 ** 20).toFixed(0)} MiB`})`,
    );
const table = lines.join('\n');
console.log(`\n${table}`);
writeFileSync(join(outDir, 'mixed-precision.md'), `${table}\n`);
writeFileSync(
  join(outDir, 'mixed-precision.json'),
  JSON.stringify({ device, shape, ours: bench.results, torch, plans }, null, 2),
);
