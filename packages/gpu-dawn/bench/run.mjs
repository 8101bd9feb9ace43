// gpu-dawn benchmarks, one after another: matmul, attention, transfers, element-wise and row kernels.
// Where python3 with torch is available (the GPU machine), each bench's *_torch.py runs first into the
// same folder, so our numbers and PyTorch's on the same GPU end up side by side in one table.
// Usage: node bench/run.mjs [outDir] [--quick]   (--quick: small shapes; chosen by itself on a CPU adapter
// such as llvmpipe, where the full shapes would take hours)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpuContext } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const ctx = await GpuContext.create();
const gpuName = ctx.report.description || ctx.report.device;
const onCpu = /llvmpipe|lavapipe|swiftshader/i.test(gpuName);
ctx.destroy();
const quick = args.includes('--quick') || onCpu;
const outDir = args.find((a) => !a.startsWith('--')) ?? mkdtempSync(join(tmpdir(), 'gpu-dawn-bench-'));
mkdirSync(outDir, { recursive: true });
const machine = {
  cpu: `${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores)`,
  gpu: gpuName,
  date: new Date().toISOString().slice(0, 10),
};
writeFileSync(join(outDir, 'machine.json'), `${JSON.stringify(machine, null, 2)}\n`);
console.log(
  `machine: CPU ${machine.cpu}; GPU ${machine.gpu}${quick ? `; small shapes${onCpu ? ' (CPU adapter)' : ''}` : ''}`,
);

const hasTorch =
  spawnSync('python3', ['-c', 'import torch; assert torch.cuda.is_available()'], { stdio: 'ignore' })
    .status === 0;
const benches = [
  {
    name: 'matmul',
    args: quick ? ['--scale', '16', '--quick'] : ['--no-robustness'],
    torch: 'matmul_torch.py',
  },
  {
    name: 'tc-tune',
    args: quick ? ['--part', 'tables', '--small'] : ['--part', 'tables', '--no-robustness'],
    torch: 'tc_torch.py',
  },
  { name: 'attention', args: quick ? ['--small'] : [], torch: 'attention_torch.py' },
  { name: 'transfer', args: quick ? ['--quick'] : [], torch: 'transfer_torch.py' },
  { name: 'elementwise', args: [], torch: undefined },
  { name: 'row-kernels', args: quick ? ['--small'] : [], torch: 'row-kernels_torch.py' },
];
let failed = 0;
for (const b of benches) {
  console.log(`\n=== ${b.name}`);
  if (hasTorch && b.torch && existsSync(join(here, b.torch))) {
    const t = spawnSync('python3', [join(here, b.torch), outDir], { stdio: 'inherit' });
    if (t.status !== 0) console.log(`(${b.torch} failed with ${t.status}; our numbers only)`);
  }
  const r = spawnSync(process.execPath, [join(here, `${b.name}.mjs`), outDir, ...b.args], {
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    failed++;
    console.log(`${b.name} bench failed (exit ${r.status})`);
  }
}
console.log(`\ngpu-dawn benches written to ${outDir}${failed ? `; ${failed} failed` : ''}`);
process.exit(failed ? 1 : 0);
