// Runs a Trainer for a few steps on a fresh GpuRuntime (so nothing else's buffers mix into its peaks)
// and reports what GpuMemory saw: the allocator's peak (live + cached), each category's peak, and the
// peak of live bytes (tracked by wrapping allocate, since GpuMemory keeps only used + cached).
import { GpuRuntime, MEMORY_CATEGORIES, type MemoryCategory } from '@lsp-offload/gpu-dawn';
import {
  ModelWeights,
  Rng,
  Trainer,
  type ModelConfig,
  type TokenBatch,
  type TrainerOptions,
  type WeightDtype,
} from '../../src/index.js';

export interface MeasuredMemory {
  livePeakBytes: number;
  footprintBytes: number;
  categoryPeaks: Record<MemoryCategory, number>;
}

export interface MeasureRun {
  config: ModelConfig;
  options: Partial<TrainerOptions>;
  weightDtype: WeightDtype;
  batch: number;
  seqLen: number;
  steps?: number;
}

export async function measureTraining(run: MeasureRun): Promise<MeasuredMemory> {
  const gpu = await GpuRuntime.create();
  try {
    const memory = gpu.memory;
    const allocate = memory.allocate.bind(memory);
    let livePeakBytes = 0;
    memory.allocate = (...args: Parameters<typeof allocate>) => {
      const buffer = allocate(...args);
      livePeakBytes = Math.max(livePeakBytes, memory.stats().usedBytes);
      return buffer;
    };
    const weights = ModelWeights.random(gpu, run.config, run.weightDtype, new Rng(1), 0.02);
    const trainer = await Trainer.create(gpu, weights, { threads: 2, lr: 1e-3, ...run.options });
    const rng = new Rng(5);
    for (let s = 0; s < (run.steps ?? 2); s++) {
      const ids = Int32Array.from({ length: run.batch * run.seqLen }, () => rng.below(run.config.vocabSize));
      const batch: TokenBatch = { batch: run.batch, seqLen: run.seqLen, inputIds: ids, labels: ids };
      await trainer.trainStep(batch);
    }
    await trainer.flush();
    const stats = memory.stats();
    await trainer.destroy();
    weights.release();
    const categoryPeaks = Object.fromEntries(
      MEMORY_CATEGORIES.map((c) => [c, stats.byCategory[c].peakBytes]),
    ) as Record<MemoryCategory, number>;
    return { livePeakBytes, footprintBytes: stats.peakBytes, categoryPeaks };
  } finally {
    gpu.destroy();
  }
}
