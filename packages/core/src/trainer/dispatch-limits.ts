// Whether the step's matmuls fit the adapter's workgroups per dimension, asked of the matmul kernels
// before anything is recorded: their grids grow with the tokens of a step (rows of activations), and the
// tile a kernel picks decides by how much. Checked on descriptor tensors (shapes over one tiny buffer:
// planning reads shapes only), for every linear's forward and input gradient and the LM head.
import { Tensor, type GpuRuntime } from '@lsp-offload/gpu-dawn';
import { matmulPlan } from '@lsp-offload/gpu-dawn/reference';
import { listParameters, type ModelConfig } from '../hf/index.js';
import type { WeightDtype } from '../model/weights.js';
import { adapterLimitProblems, type AdapterLimits } from '../planner/adapter-limits.js';
import { planGeometry, type MemoryPlan } from '../planner/plan-memory.js';

/** The limits of `gpu`'s adapter as the planner checks them (its binding limit may be a lowered one). */
export function adapterLimitsOf(gpu: GpuRuntime): AdapterLimits {
  return {
    maxStorageBufferBindingSize: gpu.maxBindingBytes,
    maxBufferSize: gpu.limits.maxBufferSize,
    maxComputeWorkgroupsPerDimension: gpu.limits.maxComputeWorkgroupsPerDimension,
    minStorageBufferOffsetAlignment: gpu.limits.minStorageBufferOffsetAlignment,
  };
}

/** Every limit of `gpu`'s adapter the planned run would break, as sentences (none: it fits). */
export function adapterProblems(gpu: GpuRuntime, plan: MemoryPlan, dtype: WeightDtype): string[] {
  const { input, config } = plan;
  const problems = adapterLimitProblems(plan, adapterLimitsOf(gpu));
  if (problems.length === 0) {
    const chunk = planGeometry(config, input).lossChunk;
    const grid = matmulGridProblem(gpu, config, dtype, input.batch, input.seqLen, chunk);
    if (grid) problems.push(grid);
  }
  return problems;
}

/**
 * Throws, naming every limit of `gpu`'s adapter the planned run would break (buffer and binding sizes,
 * the attention and matmul grids), before anything is allocated or recorded.
 */
export function checkAdapterLimits(gpu: GpuRuntime, plan: MemoryPlan, dtype: WeightDtype): void {
  const problems = adapterProblems(gpu, plan, dtype);
  if (problems.length)
    throw new Error(
      `this run does not fit the adapter (${gpu.ctx.report.description || gpu.ctx.report.device}): ` +
        problems.join('; '),
    );
}

/** The first matmul whose grid the adapter cannot launch, as a sentence; undefined when all fit. */
export function matmulGridProblem(
  gpu: GpuRuntime,
  config: ModelConfig,
  dtype: WeightDtype,
  batch: number,
  seqLen: number,
  lossChunkRows: number,
): string | undefined {
  const tokens = batch * seqLen;
  // one tiny buffer per operand (matmul refuses operands that share a buffer)
  const anchors = ['a', 'b', 'c'].map((n) => gpu.tensor(`matmul grid check ${n}`, 'f32', [1], 'workspace'));
  const shaped = (operand: number, dt: 'f32' | 'f16', shape: number[], label: string) =>
    new Tensor(anchors[operand]!.buffer, dt, shape, label);
  const shapes = new Map<string, { m: number; n: number; k: number; transB: boolean; label: string }>();
  for (const s of listParameters(config)) {
    if (s.role !== 'linear' || s.layer !== 0) continue;
    const outIn = s.layout === 'out_in';
    shapes.set(`${s.name} forward`, {
      m: tokens,
      n: s.outFeatures,
      k: s.inFeatures,
      transB: outIn,
      label: `${s.name} forward`,
    });
    shapes.set(`${s.name} dX`, {
      m: tokens,
      n: s.inFeatures,
      k: s.outFeatures,
      transB: !outIn,
      label: `${s.name} dX`,
    });
  }
  const chunk = Math.min(lossChunkRows, tokens);
  shapes.set('lm_head', {
    m: chunk,
    n: config.vocabSize,
    k: config.hiddenSize,
    transB: true,
    label: 'lm_head forward',
  });
  try {
    for (const { m, n, k, transB, label } of shapes.values()) {
      try {
        matmulPlan(gpu, {
          m,
          n,
          k,
          transB,
          a: { tensor: shaped(0, 'f32', [m, k], 'activations') },
          b: { tensor: shaped(1, dtype, transB ? [n, k] : [k, n], 'weight') },
          c: { tensor: shaped(2, 'f32', [m, n], 'output') },
          label,
        });
      } catch (e) {
        if (!/grid, over/.test((e as Error).message)) throw e;
        return (
          `--batch ${batch} x --seq ${seqLen} (${tokens} tokens per step): ${(e as Error).message} workgroups ` +
          "per dimension (the adapter's maxComputeWorkgroupsPerDimension): lower --batch or --seq"
        );
      }
    }
    return undefined;
  } finally {
    for (const t of anchors) t.release();
  }
}
