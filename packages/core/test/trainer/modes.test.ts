// The three training modes on tiny models: lsp with exact projectors equals zero step for step (both
// run AdamW over the same numbers, one in a permuted-and-signed basis); the pipelined schedule equals a
// fully synchronous run; every mode makes the loss fall on the transformers fixture.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  ModelWeights,
  Rng,
  Trainer,
  openHfModel,
  parseModelConfig,
  type TokenBatch,
  type TrainerOptions,
} from '../../src/index.js';
import { maxRelDiff } from './helpers.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

// every linear square: hidden = heads * headDim = intermediate, no GQA
const squareLlama = parseModelConfig({
  model_type: 'llama',
  vocab_size: 37,
  hidden_size: 16,
  intermediate_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 2,
  max_position_embeddings: 32,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
  hidden_act: 'silu',
});

function batches(seed: number, count: number, vocab: number, batch = 2, seqLen = 9): TokenBatch[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const ids = Int32Array.from({ length: batch * seqLen }, () => rng.below(vocab));
    const labels = ids.map((v, i) => (i % 5 === 0 ? -100 : v));
    return { batch, seqLen, inputIds: ids, labels };
  });
}

async function run(
  options: Partial<TrainerOptions>,
  data: TokenBatch[],
  dtype: 'f32' | 'f16' = 'f32',
): Promise<{ losses: number[]; weights: Map<string, Float32Array> }> {
  const weights = ModelWeights.random(gpu, squareLlama, dtype, new Rng(42), 0.2);
  const trainer = await Trainer.create(gpu, weights, {
    threads: 2,
    lr: 3e-3,
    checkpointing: true,
    // these equalities are of the method's arithmetic: f32 (mixed precision: mixed-precision.test.ts)
    precision: 'f32',
    ...options,
  });
  const losses: number[] = [];
  for (const b of data) losses.push((await trainer.trainStep(b)).loss);
  await trainer.flush();
  const out = await weights.readAll(gpu);
  await trainer.destroy();
  weights.release();
  return { losses, weights: out };
}

describe('training modes', () => {
  const data = batches(1, 5, squareLlama.vocabSize);

  it('lsp with exact projectors (signed permutations, d = m = n) matches zero step for step', async () => {
    const zero = await run({ mode: 'zero' }, data);
    const lsp = await run(
      { mode: 'lsp', exactProjectors: true, nonProjected: 'adamw', stepDtype: 'f32', gradientDtype: 'f32' },
      data,
    );
    for (let s = 0; s < data.length; s++)
      expect(Math.abs(lsp.losses[s]! - zero.losses[s]!)).toBeLessThan(1e-6 * Math.abs(zero.losses[s]!));
    expect(maxRelDiff(lsp.weights, zero.weights)).toBeLessThan(1e-6);
    // and it trained: every step saw different weights
    expect(new Set(zero.losses).size).toBe(data.length);
  });

  it('with decoupled weight decay, lsp with exact projectors still matches zero', async () => {
    const zero = await run({ mode: 'zero', weightDecay: 0.1 }, data);
    const lsp = await run(
      {
        mode: 'lsp',
        exactProjectors: true,
        nonProjected: 'adamw',
        stepDtype: 'f32',
        gradientDtype: 'f32',
        weightDecay: 0.1,
      },
      data,
    );
    for (let s = 0; s < data.length; s++)
      expect(Math.abs(lsp.losses[s]! - zero.losses[s]!)).toBeLessThan(1e-6 * Math.abs(zero.losses[s]!));
    expect(maxRelDiff(lsp.weights, zero.weights)).toBeLessThan(1e-6);
  });

  it('the pipelined schedule gives the same weights as a synchronous run', async () => {
    const opts = {
      mode: 'lsp' as const,
      rank: 8,
      nnz: 2,
      nonProjected: 'adamw' as const,
      stepDtype: 'f32' as const,
    };
    const sync = await run({ ...opts, pipelined: false }, data);
    const piped = await run({ ...opts, pipelined: true }, data);
    expect(piped.losses).toEqual(sync.losses);
    expect(maxRelDiff(piped.weights, sync.weights)).toBeLessThan(1e-6);
  });

  it('row-blocked CPU steps of large parameters give the same numbers as whole-tensor steps', async () => {
    // 1 KiB blocks: the embeddings and lm_head (37 x 16 f32 = 2368 bytes) go in 3 blocks, zero's linears
    // (16 x 16 = 1 KiB) stay whole; fp16 weights take the fp16 upload path of each block
    for (const [options, dtype] of [
      [{ mode: 'zero' }, 'f16'],
      [{ mode: 'lsp', rank: 8, nnz: 2, nonProjected: 'adamw' }, 'f32'],
    ] as const) {
      const whole = await run({ ...options, optimizerShardBytes: 1 << 30 }, data, dtype);
      const blocked = await run({ ...options, optimizerShardBytes: 1024 }, data, dtype);
      expect(blocked.losses).toEqual(whole.losses);
      for (const [name, w] of whole.weights) expect(blocked.weights.get(name), name).toEqual(w);
    }
  });

  it('native, zero and lsp all lower the loss on the transformers LLaMA fixture', async () => {
    const dir = fileURLToPath(new URL('../../fixtures/hf/llama-gqa/', import.meta.url));
    const hf = await openHfModel(dir);
    const fixed = batches(3, 1, hf.config.vocabSize, 2, 11)[0]!;
    for (const mode of ['native', 'zero', 'lsp'] as const) {
      const weights = await ModelWeights.load(gpu, hf, 'f32');
      const trainer = await Trainer.create(gpu, weights, {
        mode,
        lr: 1e-2,
        rank: 16,
        nnz: 4,
        threads: 2,
        nonProjected: 'adamw',
      });
      const losses: number[] = [];
      for (let s = 0; s < 6; s++) losses.push((await trainer.trainStep(fixed)).loss);
      await trainer.destroy();
      weights.release();
      expect(losses[5], `${mode}: ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(
        losses[0]! * 0.9,
      );
    }
    await hf.close();
  });
});
