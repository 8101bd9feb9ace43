// gpu-dawn benchmarks, one after another: matmul, attention, transfers, element-wise and row kernels.
// Where python3 with torch is available (the GPU machine), each bench's *_torch.py runs first into the
// same folder, so our numbers and PyTorch's on the same GPU end up side by side in one table.
// Usage: node bench/run.mjs [outDir] [--quick]   (--quick: small shapes, e.g. on a CPU adapter; the default
// where python3 has no CUDA torch)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outDir = args.find((a) => !a.startsWith('--')) ?? mkdtempSync(join(tmpdir(), 'gpu-dawn-bench-'));
mkdirSync(outDir, { recursive: true });

const hasTorch =
  spawnSync('python3', ['-c', 'import torch; assert torch.cuda.is_available()'], { stdio: 'ignore' })
    .status === 0;
const quick = args.includes('--quick') || !hasTorch;
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
