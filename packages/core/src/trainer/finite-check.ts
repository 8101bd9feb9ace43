// Non-finite values in the model's state, counted on the GPU (one reduction per tensor into one small
// buffer, one read back): run before a checkpoint or an export is written and after weights are loaded,
// never inside a step. The per-step loss check cannot see a diverged update: the loss of step s is
// computed before step s's update, so the weights a save would write may already be NaN or infinite.
import { nonFiniteCount, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import type { Trainer } from './trainer.js';

export interface NonFiniteReport {
  /** Non-finite values over every tensor checked. */
  readonly total: number;
  /** The tensors holding any, most first. */
  readonly tensors: readonly { readonly name: string; readonly count: number }[];
}

/** Counts NaN and +-Inf in each named tensor. */
export async function countNonFinite(
  gpu: GpuRuntime,
  tensors: readonly (readonly [string, Tensor])[],
): Promise<NonFiniteReport> {
  if (tensors.length === 0) return { total: 0, tensors: [] };
  const counts = gpu.tensor('non-finite counts', 'u32', [tensors.length], 'workspace');
  try {
    tensors.forEach(([, t], i) => {
      nonFiniteCount(gpu, t, { out: counts, outIndex: i });
      // each reduction's partials are scratch, freed at a submit: keep at most one tensor's worth
      gpu.submit();
    });
    const values = await gpu.read(counts);
    const found = tensors
      .map(([name], i) => ({ name, count: values[i]! }))
      .filter((t) => t.count > 0)
      .sort((a, b) => b.count - a.count);
    return { total: found.reduce((n, t) => n + t.count, 0), tensors: found };
  } finally {
    counts.release();
  }
}

/** "12 weights are not finite (a.weight 10, b.weight 2)": the report in a line. */
export function describeNonFinite(report: NonFiniteReport, what = 'weights'): string {
  const listed = report.tensors
    .slice(0, 4)
    .map((t) => `${t.name} ${t.count}`)
    .join(', ');
  const more = report.tensors.length > 4 ? `, and ${report.tensors.length - 4} more tensors` : '';
  return `${report.total} ${what} ${report.total === 1 ? 'is' : 'are'} not finite (${listed}${more})`;
}

/** The trainer's GPU state a save writes: the weights, and native's GPU AdamW moments and masters. */
export function trainerStateTensors(trainer: Trainer): [string, Tensor][] {
  const out: [string, Tensor][] = trainer.weights.specs.map((s) => [s.name, trainer.weights.get(s.name)]);
  for (const [name, s] of trainer.gpuOptimizerState) {
    out.push([`${name} (AdamW m)`, s.m], [`${name} (AdamW v)`, s.v]);
    if (s.master) out.push([`${name} (master)`, s.master]);
  }
  return out;
}
