// lsp step Ds that miss the backward wait on the host and go up only UPLOAD_AHEAD_BLOCKS blocks ahead of
// their block's forward: with clipping every CPU step runs after the backward, so every update misses
// it; once they are all done the GPU holds none of their D, and the next steps take exactly the same
// numbers as the synchronous reference (every update applied before the next step).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import { ModelWeights, Rng, Trainer, type TokenBatch } from '../../src/index.js';
import { tinyLlama } from './helpers.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

const config = tinyLlama({ vocab_size: 61, num_hidden_layers: 6 });

function batch(seed: number): TokenBatch {
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: 2 * 9 }, () => rng.below(config.vocabSize));
  return { batch: 2, seqLen: 9, inputIds: ids, labels: ids };
}

const liveD = (g: GpuRuntime) => g.memory.largest(100_000).filter((b) => b.label.startsWith('D.')).length;

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(done()).toBe(true);
}

describe('deferred step uploads', () => {
  it('Ds made after the backward stay on the host until their block is near; same steps as the reference', async () => {
    const run = async (pipelined: boolean) => {
      const weights = ModelWeights.random(gpu, config, 'f32', new Rng(3), 0.2);
      const trainer = await Trainer.create(gpu, weights, {
        mode: 'lsp',
        precision: 'f32',
        rank: 8,
        nnz: 2,
        threads: 2,
        maxGradNorm: 0.5, // CPU steps start once the backward is done
        pipelined,
      });
      const losses: number[] = [];
      const held: number[] = [];
      const cpu = trainer.cpuOptimizer!;
      const projected = cpu.names().filter((n) => cpu.info(n).kind === 'stepOnly');
      for (let s = 1; s <= 3; s++) {
        losses.push((await trainer.trainStep(batch(s))).loss);
        // every CPU step of this step done: their Ds wait on the host
        await until(() => projected.every((n) => cpu.info(n).steps === s));
        held.push(liveD(gpu));
      }
      await trainer.flush();
      const out = await weights.readAll(gpu);
      await trainer.destroy();
      weights.release();
      return { losses, held, out, projected: projected.length };
    };
    const pipelined = await run(true);
    const reference = await run(false);
    expect(pipelined.projected).toBe(7 * config.numLayers);
    // (at most the one block whose upload the end of the backward found under way)
    for (const h of pipelined.held) expect(h).toBeLessThanOrEqual(7);
    expect(pipelined.losses).toEqual(reference.losses);
    for (const [name, w] of reference.out) expect(pipelined.out.get(name), name).toEqual(w);
  });
});
