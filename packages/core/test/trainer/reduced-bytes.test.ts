// lsp's reduced-byte formats in the trainer: the embedding gradient sent as touched rows gives exactly the
// numbers of sending it whole (with row blocks and gradient accumulation, fp16 and f32); a non-finite
// gradient, counted on the GPU, stops the step before the CPU state changes; every step reports its bytes
// by kind and, from the second on, the offload critical path. Convergence of the fp16 formats against the
// lossless path (f32 S, f32 D, the embedding gradient whole) is reduced-bytes-convergence.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  ModelWeights,
  Rng,
  Trainer,
  type StepMetrics,
  type TokenBatch,
  type TrainerOptions,
} from '../../src/index.js';
import { tinyLlama } from './helpers.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

const config = tinyLlama({ vocab_size: 53 });

function batch(seed: number, rows = 2, seqLen = 7): TokenBatch {
  const rng = new Rng(seed);
  // ids from the lower half of the vocabulary: many embedding rows stay untouched
  const ids = Int32Array.from({ length: rows * seqLen }, () => rng.below(26));
  return { batch: rows, seqLen, inputIds: ids, labels: ids };
}

async function train(
  options: Partial<TrainerOptions>,
  steps: (TokenBatch | TokenBatch[])[],
): Promise<{ metrics: StepMetrics[]; weights: Map<string, Float32Array>; trainer?: Trainer }> {
  const weights = ModelWeights.random(gpu, config, 'f32', new Rng(7), 0.2);
  const trainer = await Trainer.create(gpu, weights, {
    mode: 'lsp',
    rank: 8,
    nnz: 2,
    lr: 3e-3,
    threads: 2,
    weightDecay: 0.05,
    ...options,
  });
  const metrics: StepMetrics[] = [];
  for (const b of steps) metrics.push(await trainer.trainStep(b));
  await trainer.flush();
  const out = await weights.readAll(gpu);
  await trainer.destroy();
  weights.release();
  return { metrics, weights: out };
}

describe('reduced-byte formats in the trainer', () => {
  it('the embedding gradient as touched rows gives the numbers of sending it whole', async () => {
    for (const gradientDtype of ['f16', 'f32'] as const) {
      // row blocks of 512 bytes (the embedding's 53 x 24 f32 in 10 blocks), two micro-batches per step
      const common = { gradientDtype, optimizerShardBytes: 512, gradAccum: 2 };
      const steps = [0, 1, 2].map((s) => [batch(2 * s), batch(2 * s + 1)]);
      const dense = await train({ ...common, embeddingGradient: 'dense' }, steps);
      const rows = await train({ ...common, embeddingGradient: 'rows' }, steps);
      expect(rows.metrics.map((m) => m.loss)).toEqual(dense.metrics.map((m) => m.loss));
      for (const [name, w] of dense.weights) expect(rows.weights.get(name), name).toEqual(w);
      // and fewer bytes went down: 14 ids of 26 possible per micro-batch, never all 53 rows
      const embedBytes = (m: StepMetrics) => m.bytesByKind['embedding rows']?.toHost ?? 0;
      expect(embedBytes(rows.metrics[0]!)).toBeGreaterThan(0);
      expect(rows.metrics[0]!.bytesToHost).toBeLessThan(dense.metrics[0]!.bytesToHost);
      expect(embedBytes(dense.metrics[0]!)).toBe(0);
    }
  });

  it('a non-finite gradient, counted on the GPU, skips its units before the CPU state changes (f32: the run stops)', async () => {
    const weights = ModelWeights.random(gpu, config, 'f32', new Rng(7), 0.2);
    const trainer = await Trainer.create(gpu, weights, {
      mode: 'lsp',
      precision: 'f32',
      rank: 8,
      nnz: 2,
      threads: 2,
    });
    await trainer.trainStep(batch(1));
    await trainer.flush();
    const cpu = trainer.cpuOptimizer!;
    const before = new Map(cpu.names().map((n) => [n, cpu.expAvg(n).slice()]));
    // one NaN in the last block's input norm: every gradient below it becomes NaN
    const norm = weights.get('model.layers.1.input_layernorm.weight');
    const values = (await gpu.read(norm)) as Float32Array;
    values[3] = Number.NaN;
    gpu.write(norm, values);
    const failed = (async () => {
      await trainer.trainStep(batch(2));
      await trainer.flush();
    })();
    await expect(failed).rejects.toThrow(/step 2: non-finite gradients; the step was skipped/);
    for (const [name, m] of before) expect(cpu.expAvg(name), name).toEqual(m);
    await trainer.destroy().catch(() => undefined);
    weights.release();
  });

  it('reports bytes by kind (S and D in fp16) and, from the second step on, the offload critical path', async () => {
    const { metrics } = await train({}, [batch(1), batch(2), batch(3)]);
    const [first, second] = metrics as [StepMetrics, StepMetrics];
    const d2 = 8 * 8;
    const linears = 7 * config.numLayers;
    expect(first.bytesByKind.S!.toHost).toBe(linears * d2 * 2);
    expect(first.bytesByKind.D!.toDevice).toBe(linears * d2 * 2);
    const sum = (way: 'toHost' | 'toDevice') =>
      Object.values(first.bytesByKind).reduce((a, k) => a + k![way], 0);
    expect(sum('toHost')).toBe(first.bytesToHost);
    expect(sum('toDevice')).toBe(first.bytesToDevice);
    expect(first.offloadCriticalPathMs).toBeNull();
    expect(second.offloadCriticalPathMs).toBeGreaterThan(0);
    expect(second.offloadCpuMs).toBeGreaterThan(0);
    expect(second.offloadCriticalPathMs!).toBeGreaterThanOrEqual(
      Math.max(second.offloadDownloadMs!, second.offloadCpuMs!, second.offloadUploadMs!),
    );
    expect(['download', 'cpu', 'upload']).toContain(second.offloadBound);
  });
});
