// The demo task (the README's main job) trained the same number of steps in lsp and native mode: lsp's
// held-out loss must be within 10 % of native's (or better), and both must have learned the task.
import { describe, expect, it } from 'vitest';
import { GpuRuntime, runTraining, type TrainMode } from '../../src/index.js';

async function demo(mode: TrainMode): Promise<{ evalLoss: number; exact: number; first: number }> {
  const gpu = await GpuRuntime.create();
  try {
    const s = await runTraining(gpu, {
      model: 'demo',
      steps: 60,
      batch: 8,
      seqLen: 64,
      dtype: 'f32',
      evalEvery: 60,
      evalBatches: 4,
      trainer: { mode, rank: 64, nnz: 4, lr: 3e-3, nonProjected: 'adamw', threads: 2 },
    });
    const first = s.evals[0]!;
    const last = s.evals[s.evals.length - 1]!;
    return { evalLoss: last.evalLoss, exact: last.accuracy!.exactMatch, first: first.evalLoss };
  } finally {
    gpu.destroy();
  }
}

describe('demo task: lsp against native', () => {
  it('lsp reaches an eval loss within 10 % of native after the same 60 steps', async () => {
    const native = await demo('native');
    const lsp = await demo('lsp');
    expect(native.evalLoss).toBeLessThan(0.2 * native.first);
    expect(lsp.evalLoss, `lsp ${lsp.evalLoss} vs native ${native.evalLoss}`).toBeLessThanOrEqual(
      1.1 * native.evalLoss,
    );
    expect(lsp.exact).toBeGreaterThan(0.9);
  });
});
