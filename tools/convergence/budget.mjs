#!/usr/bin/env node
// The GPU memory budget of the convergence experiment's ratio setting (the paper's: a GPU on which
// ZeRO-Offload just fits): the smallest budget, to 1 MiB, at which the memory plans of every given mode
// fit (the planner shrinks the staging rings under a budget), plus a margin for what the plan leaves
// out (projector checks' held-out gradients). Prints the budget as e.g. "612MiB" on stdout and what it
// is made of on stderr.
//
//   node tools/convergence/budget.mjs <model dir> --batch 8 --seq 512 --rank 512 --nnz 4 --dtype f16 \
//       [--modes lsp,zero] [--margin 0.1] [--staging-chunk-mib 4]
//
// The plan input is the one `lsp-offload train` builds from the same flags (non-projected parameters
// trained by the offloaded AdamW, gradient checkpointing on).
import { parseArgs } from 'node:util';
import { loadModelConfig, planMemory } from '../../packages/core/dist/index.js';

const MiB = 2 ** 20;
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    batch: { type: 'string' },
    seq: { type: 'string' },
    rank: { type: 'string' },
    nnz: { type: 'string', default: '4' },
    dtype: { type: 'string', default: 'f16' },
    modes: { type: 'string', default: 'lsp,zero' },
    margin: { type: 'string', default: '0.1' },
    'staging-chunk-mib': { type: 'string', default: '4' },
  },
});
const int = (name) => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name} must be a positive integer, got '${values[name]}'`);
  return n;
};
if (positionals.length !== 1) throw new Error('give one model directory');
const config = await loadModelConfig(positionals[0]);
const modes = values.modes.split(',');
const input = (mode, budgetBytes) => ({
  batch: int('batch'),
  seqLen: int('seq'),
  mode,
  rank: int('rank'),
  nnz: int('nnz'),
  weightDtype: values.dtype,
  checkpointing: true,
  nonProjected: 'adamw',
  stagingChunkBytes: int('staging-chunk-mib') * MiB,
  ...(budgetBytes !== undefined && { budgetBytes }),
});
const fits = (mib) => modes.every((m) => planMemory(config, input(m, mib * MiB)).peakBytes <= mib * MiB);
const unbudgeted = Object.fromEntries(modes.map((m) => [m, planMemory(config, input(m)).peakBytes]));
let hi = Math.ceil(Math.max(...Object.values(unbudgeted)) / MiB);
if (!fits(hi)) throw new Error(`the plans do not fit their own unbudgeted peak of ${hi} MiB`);
let lo = 0; // fits(lo) is false, fits(hi) true
while (hi - lo > 1) {
  const mid = Math.floor((lo + hi) / 2);
  if (fits(mid)) hi = mid;
  else lo = mid;
}
const budgetMiB = Math.ceil(hi * (1 + Number(values.margin)));
const described = modes
  .map(
    (m) =>
      `${m} ${(unbudgeted[m] / MiB).toFixed(0)} MiB unbudgeted, ${(planMemory(config, input(m, budgetMiB * MiB)).peakBytes / MiB).toFixed(0)} MiB under it`,
  )
  .join('; ');
process.stderr.write(
  `budget: ${budgetMiB} MiB = the smallest that fits ${modes.join(' and ')} (${hi} MiB) + ${100 * Number(values.margin)} %; ${described}\n`,
);
console.log(`${budgetMiB}MiB`);
