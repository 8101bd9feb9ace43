// Projector refits inside training (lsp): every checkFreq steps the pairs are measured on held-out
// gradients, the ones above alpha are learned again and their layers' CPU moments moved into the new
// subspace; training goes on with the refitted projectors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  ModelWeights,
  Rng,
  Trainer,
  loadCheckpoint,
  openHfModel,
  resumeTraining,
  saveCheckpoint,
  type TokenBatch,
} from '../../src/index.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

/** The GQA LLaMA fixture's weights (f32), and its config. */
async function fixture() {
  const hf = await openHfModel(fileURLToPath(new URL('../../fixtures/hf/llama-gqa/', import.meta.url)));
  const weights = await ModelWeights.load(gpu, hf, 'f32');
  await hf.close();
  return { hf, weights };
}

/** The lsp settings every test here trains with (small d and r, non-projected frozen). */
const LSP = { mode: 'lsp', rank: 8, nnz: 2, nonProjected: 'frozen', threads: 2 } as const;

function batches(seed: number, count: number, vocab: number): TokenBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const ids = Int32Array.from({ length: 2 * 11 }, () => rng.below(vocab));
    return { batch: 2, seqLen: 11, inputIds: ids, labels: ids };
  });
}

describe('projector refits during lsp training', () => {
  it('measures, refits the pairs above alpha, moves the moments and keeps training', async () => {
    const { hf, weights } = await fixture();
    const trainer = await Trainer.create(gpu, weights, {
      ...LSP,
      lr: 1e-2,
      refit: { alpha: 0.3, checkFreq: 2, sharing: 'type' },
    });
    const train = batches(1, 4, hf.config.vocabSize);
    const heldOut = batches(2, 2, hf.config.vocabSize);
    const losses: number[] = [];
    const reports = [];
    const cpu = trainer.cpuOptimizer!;
    let movedLayers = 0;
    for (const b of train) {
      losses.push((await trainer.trainStep(b)).loss);
      await trainer.flush();
      const before = new Map([...trainer.projectedLayers.keys()].map((n) => [n, cpu.expAvg(n).slice()]));
      const r = await trainer.maybeRefit(heldOut);
      if (!r) continue;
      reports.push(r);
      // a refitted layer's first moment now lives in the new subspace: it changed
      for (const l of r.layers.filter((x) => x.refitted)) {
        const now = cpu.expAvg(l.layer);
        if (now.some((x, i) => x !== before.get(l.layer)![i])) movedLayers++;
      }
    }
    expect(movedLayers).toBeGreaterThan(0);
    expect(reports.length).toBe(2); // after steps 2 and 4
    const first = reports[0]!;
    expect(first.groups.length).toBe(7); // q, k, v, o, gate, up, down share a pair per type
    expect(first.layers.length).toBe(14);
    for (const g of first.groups) {
      expect(g.errorBefore).toBeGreaterThan(0);
      if (g.refitted) expect(g.errorAfter).toBeLessThan(g.errorBefore);
    }
    expect(first.groups.some((g) => g.refitted)).toBe(true);
    // the moments moved into the new subspace are finite, and training continues with finite losses
    for (const name of trainer.projectedLayers.keys()) {
      for (const x of cpu.expAvg(name)) if (!Number.isFinite(x)) expect.fail(`non-finite moment in ${name}`);
    }
    for (const l of losses) expect(Number.isFinite(l)).toBe(true);
    await trainer.destroy();
    weights.release();
  });

  it('checks the random starting pairs before the first step (atStart), unless told not to', async () => {
    const { hf, weights } = await fixture();
    const heldOut = batches(5, 2, hf.config.vocabSize);
    for (const atStart of [true, false]) {
      const trainer = await Trainer.create(gpu, weights, {
        ...LSP,
        refit: { alpha: 0.3, checkFreq: 5, sharing: 'type', atStart },
      });
      const report = await trainer.maybeRefit(heldOut);
      if (!atStart) expect(report).toBeUndefined();
      else {
        // random pairs are far above alpha: every group learns, and the kept pairs reconstruct better
        expect(report!.groups.every((g) => g.learned)).toBe(true);
        expect(report!.groups.some((g) => g.refitted)).toBe(true);
        for (const g of report!.groups) expect(g.errorAfter).toBeLessThanOrEqual(g.errorBefore);
        // zero moments move to zero moments, and training goes on
        for (const name of trainer.projectedLayers.keys())
          expect(trainer.cpuOptimizer!.expAvg(name).every((x) => x === 0)).toBe(true);
      }
      const { loss } = await trainer.trainStep(batches(6, 1, hf.config.vocabSize)[0]!);
      expect(Number.isFinite(loss)).toBe(true);
      expect(await trainer.maybeRefit(heldOut)).toBeUndefined(); // next check at step 5
      await trainer.destroy();
    }
    weights.release();
  });

  it("checkpoints keep the refitter's generator: refits after a resume draw what they would have", async () => {
    const { hf, weights } = await fixture();
    // alpha 0: every pair is refitted at every check, so each check draws fresh positions
    const refit = { alpha: 0, checkFreq: 1, sharing: 'type' as const };
    const trainer = await Trainer.create(gpu, weights, {
      ...LSP,
      refit,
    });
    const initial = trainer.refitRngState!;
    const [train, heldOut] = [batches(3, 2, hf.config.vocabSize), batches(4, 1, hf.config.vocabSize)];
    await trainer.trainStep(train[0]!);
    expect(await trainer.maybeRefit(heldOut)).toBeDefined();
    const drawn = trainer.refitRngState!;
    expect(drawn).not.toEqual(initial);
    const dir = join(mkdtempSync(join(tmpdir(), 'refit-ckpt-')), 'ckpt');
    await saveCheckpoint(dir, { trainer });

    // the refit after the next step, uninterrupted
    await trainer.trainStep(train[1]!);
    const report = await trainer.maybeRefit(heldOut);
    const positions = [...trainer.projectedLayers.values()].map((l) => l.left.positions.slice());
    await trainer.destroy();
    weights.release();

    const { trainer: resumed } = await resumeTraining(gpu, await loadCheckpoint(dir), {
      runtime: { threads: 2 },
    });
    expect(resumed.refitRngState).toEqual(drawn);
    await resumed.trainStep(train[1]!);
    const again = await resumed.maybeRefit(heldOut);
    expect([...resumed.projectedLayers.values()].map((l) => l.left.positions.slice())).toEqual(positions);
    expect(again!.groups.map((g) => g.errorAfter)).toEqual(report!.groups.map((g) => g.errorAfter));
    await resumed.destroy();
    resumed.weights.release();
  });
});
