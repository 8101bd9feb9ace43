// The memory plan of a Trainer about to be created: its options and the loaded weights' config and dtype.
import type { ModelConfig } from '../hf/index.js';
import type { WeightDtype } from '../model/weights.js';
import type { TrainerOptions } from '../options/trainer-options.js';
import { planMemory, type MemoryPlan } from './plan-memory.js';

/**
 * Plan for the trainer's options. Without `plannedBatch` the trainer cannot know its batch geometry yet,
 * so the plan covers a one-token step: it still catches a model whose fixed state cannot fit.
 */
export function planTrainerMemory(
  config: ModelConfig,
  weightDtype: WeightDtype,
  options: TrainerOptions,
  /** The GPU budget the staging rings should fit into (see PlanInput.budgetBytes). */
  budgetBytes = Infinity,
  /** The adapter's storage binding limit (GpuRuntime.maxBindingBytes). */
  maxBindingBytes = Infinity,
): MemoryPlan {
  const { batch, seqLen } = options.plannedBatch ?? { batch: 1, seqLen: 1 };
  return planMemory(config, {
    batch,
    seqLen,
    weightDtype,
    // (Trainer.create resolves auto before planning; a caller planning ahead passes a resolved value)
    precision: options.precision === 'mixed' ? 'mixed' : 'f32',
    mode: options.mode,
    rank: options.rank,
    nnz: options.nnz,
    checkpointing: options.checkpointing,
    lossChunkTokens: options.lossChunkTokens,
    exactProjectors: options.exactProjectors,
    nonProjected: options.nonProjected,
    stepDtype: options.stepDtype,
    gradientDtype: options.gradientDtype,
    embeddingGradient: options.embeddingGradient,
    weightDecay: options.weightDecay,
    pipelined: options.pipelined,
    gradAccum: options.gradAccum,
    stagingChunkBytes: options.stagingChunkBytes,
    budgetBytes,
    maxBindingBytes,
  });
}
