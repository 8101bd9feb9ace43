// Convergence of lsp's reduced-byte path (the defaults: S and the dense gradients down as fp16 with
// per-tensor scales, D up as fp16 in units of the learning rate, the embedding gradient as touched rows)
// against the lossless path (S and the gradients f32, D f32, the embedding gradient whole), the same steps
// on the same data: the demo task's held-out loss and answer accuracy, and the held-out loss of the
// transformers fixtures (LLaMA with untied embeddings: rows; GPT-2, tied: whole).
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  ModelWeights,
  Rng,
  Trainer,
  openHfModel,
  runTraining,
  type TokenBatch,
  type TrainerOptions,
} from '../../src/index.js';

const LOSSLESS: Partial<TrainerOptions> = {
  gradientDtype: 'f32',
  stepDtype: 'f32',
  embeddingGradient: 'dense',
};

async function demo(trainer: Partial<TrainerOptions>): Promise<{ loss: number[]; exact: number }> {
  const gpu = await GpuRuntime.create();
  try {
    const s = await runTraining(gpu, {
      model: 'demo',
      steps: 60,
      batch: 8,
      seqLen: 64,
      dtype: 'f32',
      evalEvery: 20,
      evalBatches: 4,
      trainer: { mode: 'lsp', rank: 64, nnz: 4, lr: 3e-3, nonProjected: 'adamw', threads: 2, ...trainer },
    });
    return { loss: s.evals.map((e) => e.evalLoss), exact: s.evals[s.evals.length - 1]!.accuracy!.exactMatch };
  } finally {
    gpu.destroy();
  }
}

function batches(seed: number, count: number, vocab: number): TokenBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    // a repeating pattern with noise, so there is something to learn in 12 steps
    const ids = Int32Array.from({ length: 2 * 16 }, (_, i) =>
      rng.next() < 0.8 ? (i * 7) % vocab : rng.below(vocab),
    );
    return { batch: 2, seqLen: 16, inputIds: ids, labels: ids };
  });
}

async function fixture(name: string, trainer: Partial<TrainerOptions>): Promise<number[]> {
  const gpu = await GpuRuntime.create();
  const hf = await openHfModel(fileURLToPath(new URL(`../../fixtures/hf/${name}/`, import.meta.url)));
  try {
    const weights = await ModelWeights.load(gpu, hf, 'f32');
    const t = await Trainer.create(gpu, weights, {
      mode: 'lsp',
      rank: 16,
      nnz: 4,
      lr: 5e-3,
      threads: 2,
      nonProjected: 'adamw',
      ...trainer,
    });
    const heldOut = batches(99, 2, hf.config.vocabSize);
    const losses: number[] = [];
    for (const b of batches(1, 12, hf.config.vocabSize)) {
      await t.trainStep(b);
      losses.push(await t.evaluate(heldOut));
    }
    await t.destroy();
    weights.release();
    return losses;
  } finally {
    await hf.close();
    gpu.destroy();
  }
}

describe('the reduced-byte path converges like the lossless one', () => {
  it('demo task: the same held-out loss curve and answer accuracy after 60 steps', async () => {
    const lossless = await demo(LOSSLESS);
    const reduced = await demo({});
    const shown = `reduced ${reduced.loss.map((l) => l.toFixed(4))} vs lossless ${lossless.loss.map((l) => l.toFixed(4))}`;
    expect(reduced.loss.length).toBe(lossless.loss.length);
    // every evaluation within 5 % (or 0.005 once the task is learnt), and the task learnt
    reduced.loss.forEach((l, i) =>
      expect(Math.abs(l - lossless.loss[i]!), shown).toBeLessThanOrEqual(0.05 * lossless.loss[i]! + 0.005),
    );
    expect(lossless.loss[lossless.loss.length - 1]!, shown).toBeLessThan(0.1);
    expect(reduced.exact).toBeGreaterThanOrEqual(lossless.exact - 0.02);
  });

  for (const name of ['llama-gqa', 'gpt2'])
    it(`${name} fixture: the same held-out loss after every step`, async () => {
      const lossless = await fixture(name, LOSSLESS);
      const reduced = await fixture(name, {});
      const shown = `reduced ${reduced.map((l) => l.toFixed(4))} vs lossless ${lossless.map((l) => l.toFixed(4))}`;
      expect(lossless[lossless.length - 1]!, shown).toBeLessThan(0.9 * lossless[0]!);
      reduced.forEach((l, i) =>
        expect(Math.abs(l - lossless[i]!), shown).toBeLessThanOrEqual(0.002 * lossless[i]!),
      );
    });
});
