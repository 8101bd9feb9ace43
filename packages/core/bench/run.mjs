// core benchmarks, one after another: the sparse projector kernels against the dense weight gradient,
// and the model's training step (our native mode, f32 and f16 weights) beside PyTorch eager on the same
// LLaMA config when python3 with torch and a GPU is available.
// Usage: node bench/run.mjs [outDir] [--small] [--preset tinyllama-1.1b] [--batch 1] [--seq 1024]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpuContext, MODEL_PRESETS } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const ctx = await GpuContext.create();
const onCpu = /llvmpipe|lavapipe|swiftshader/i.test(ctx.report.description);
ctx.destroy();
const small = args.includes('--small') || onCpu;
const outDir =
  args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')) ??
  mkdtempSync(join(tmpdir(), 'core-bench-'));
mkdirSync(outDir, { recursive: true });
const preset = flag('--preset', small ? 'llama-tiny' : 'tinyllama-1.1b');
const batch = flag('--batch', small ? '2' : '1');
const seq = flag('--seq', small ? '64' : '1024');
let failed = 0;
const run = (title, cmd, cmdArgs) => {
  console.log(`\n=== ${title}`);
  const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.log(`${title} failed (exit ${r.status})`);
  }
};
run('sparse projector kernels', process.execPath, [
  join(here, 'projector-kernels.mjs'),
  outDir,
  ...(small ? ['--small'] : []),
]);
const cli = join(here, '../../cli/dist/bin.js');
for (const dtype of ['f32', 'f16']) {
  run(`model training step, ours (native, ${dtype} weights)`, process.execPath, [
    cli,
    'bench',
    '--model',
    preset,
    '--modes',
    'native',
    '--dtype',
    dtype,
    '--batch',
    batch,
    '--seq',
    seq,
    '--steps',
    '3',
    '--warmup',
    '1',
    '--no-robustness',
    '--out',
    join(outDir, `model-${dtype}`),
  ]);
}
const hasTorch =
  spawnSync('python3', ['-c', 'import torch, transformers; assert torch.cuda.is_available()'], {
    stdio: 'ignore',
  }).status === 0;
if (hasTorch) {
  const config = join(outDir, `${preset}.config.json`);
  writeFileSync(config, JSON.stringify(MODEL_PRESETS[preset].json));
  for (const dtype of ['fp32', 'bf16'])
    run(`model training step, PyTorch eager ${dtype}`, 'python3', [
      join(here, 'model_torch.py'),
      outDir,
      config,
      batch,
      seq,
      '--dtype',
      dtype,
    ]);
} else {
  console.log('\n(no python3 with torch and a GPU here: PyTorch side skipped)');
}
console.log(`\ncore benches written to ${outDir}${failed ? `; ${failed} failed` : ''}`);
process.exit(failed ? 1 : 0);
