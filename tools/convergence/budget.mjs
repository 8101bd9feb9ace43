#!/usr/bin/env node
// The GPU memory budget of the convergence experiment's ratio setting (the paper's: a GPU on which
// ZeRO-Offload fits): the smallest budget, to 1 MiB, at which the memory plans of every given mode fit
// (the planner shrinks the staging rings under a budget), plus a margin. lsp's projector checks are not
// in the plan: with --refit-batches N (the trainer's 2 when refits are on) lsp is also given room for
// their dense f32 gradients, N per layer of the largest group (one pair per layer type: every layer),
// and one residual of that size. Prints the budget as e.g. "612MiB" on stdout, what it is made of on
// stderr.
//
//   node tools/convergence/budget.mjs <model dir> --batch 8 --seq 512 --rank 512 --nnz 4 --dtype f16 \
//       [--modes lsp,zero] [--refit-batches 0] [--margin 0.1] [--staging-chunk-mib 4]
//
// The plan input is the one `lsp-offload train` builds from the same flags (non-projected parameters
// trained by the offloaded AdamW, gradient checkpointing on).
import { parseArgs } from 'node:util';
import { listParameters, loadModelConfig, planMemory } from '../../packages/core/dist/index.js';

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
    'refit-batches': { type: 'string', default: '0' },
    margin: { type: 'string', default: '0.1' },
    'staging-chunk-mib': { type: 'string', default: '4' },
  },
});
const int = (name, min = 1) => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`--${name} must be an integer >= ${min}, got '${values[name]}'`);
  return n;
};
if (positionals.length !== 1) throw new Error('give one model directory');
const config = await loadModelConfig(positionals[0]);
const modes = values.modes.split(',');
const margin = Number(values.margin);
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
const largestLinear = Math.max(
  ...listParameters(config)
    .filter((p) => p.role === 'linear')
    .map((p) => p.shape[0] * p.shape[1]),
);
const refitBatches = int('refit-batches', 0);
const refitBytes = refitBatches > 0 ? (refitBatches * config.numLayers + 1) * largestLinear * 4 : 0;
const need = (mode, budgetBytes) =>
  planMemory(config, input(mode, budgetBytes)).peakBytes + (mode === 'lsp' ? refitBytes : 0);
const fits = (mib) => modes.every((m) => need(m, mib * MiB) <= mib * MiB);

const unbudgeted = Object.fromEntries(modes.map((m) => [m, need(m)]));
let hi = Math.ceil(Math.max(...Object.values(unbudgeted)) / MiB);
if (!fits(hi)) throw new Error(`the plans do not fit their own unbudgeted peak of ${hi} MiB`);
let lo = 0; // fits(lo) is false, fits(hi) true
while (hi - lo > 1) {
  const mid = Math.floor((lo + hi) / 2);
  if (fits(mid)) hi = mid;
  else lo = mid;
}
const budgetMiB = Math.ceil(hi * (1 + margin));
const mib = (bytes) => `${(bytes / MiB).toFixed(0)} MiB`;
const described = modes
  .map((m) => {
    const under = need(m, budgetMiB * MiB);
    return `${m} ${mib(unbudgeted[m])} unbudgeted, ${mib(under)} under it${under < unbudgeted[m] ? '' : ' (not constrained)'}`;
  })
  .join('; ');
const checks = refitBytes ? ` (lsp with ${mib(refitBytes)} for projector checks)` : '';
process.stderr.write(
  `budget: ${budgetMiB} MiB = the smallest that fits ${modes.join(' and ')}${checks}, ${hi} MiB, ` +
    `+ ${100 * margin} %; ${described}\n`,
);
console.log(`${budgetMiB}MiB`);
