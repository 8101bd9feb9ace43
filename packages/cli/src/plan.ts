// `lsp-offload plan`: the GPU (and host) memory a training run will need, predicted from config.json and
// the run's flags before anything is loaded, with the total against a --gpu-memory budget and, when it
// does not fit, changes that would. The flags and their defaults are those of `lsp-offload train`.
import {
  GpuRuntime,
  TRAIN_MODES,
  adapterProblems,
  formatMemorySize,
  parameterCount,
  rankNote,
  rankProblem,
  resolveModelConfig,
  resolvePrecision,
  resolveWeightDtype,
  planMemory,
  suggestChanges,
  type CategoryBytes,
  type MemoryPlan,
  type ModelConfig,
  type PlanInput,
} from '@lsp-offload/core';
import { CHOICES, int, oneOf, withModelDefaults, transferFormats } from './flags.js';
import { parseSize } from './size.js';

export interface PlanCommandOptions {
  model: string;
  batch?: string;
  seq?: string;
  mode: string;
  rank?: string;
  nnz: string;
  dtype: string;
  precision: string;
  /** Commander's --no-checkpointing: true unless given. */
  checkpointing: boolean;
  nonProjected: string;
  gradDtype: string;
  stepDtype: string;
  embeddingGrad: string;
  gpuMemory?: string;
  stagingChunk: string;
  gradAccum?: string;
  json?: boolean;
}

/** The plan input for the flags (unset ones take `train`'s defaults for this model). */
export function planInputFromFlags(flags: PlanCommandOptions, positions?: number): PlanInput {
  const opts = withModelDefaults(flags, positions);
  return {
    batch: int('batch', opts.batch),
    seqLen: int('seq', opts.seq),
    mode: oneOf('mode', opts.mode, TRAIN_MODES),
    rank: int('rank', opts.rank),
    nnz: int('nnz', opts.nnz),
    // (--dtype auto is resolved by then: planDtype)
    weightDtype: oneOf('dtype', opts.dtype, ['f32', 'f16'] as const),
    precision: oneOf('precision', opts.precision, ['mixed', 'f32'] as const),
    checkpointing: opts.checkpointing,
    nonProjected: oneOf('non-projected', opts.nonProjected, CHOICES.nonProjected),
    ...transferFormats(opts),
    stagingChunkBytes: parseSize(opts.stagingChunk),
    ...(opts.gradAccum !== undefined && { gradAccum: int('grad-accum', opts.gradAccum) }),
  };
}

/**
 * --dtype auto is f16 and --precision auto mixed where this machine's adapter has shader-f16 (as train
 * decides); f32 without an adapter.
 */
function planDtypes(
  gpu: GpuRuntime | undefined,
  dtype: string,
  precision: string,
): { dtype: string; precision: string } {
  const hasF16 = gpu?.has('shader-f16') ?? false;
  return {
    dtype: dtype === 'auto' ? resolveWeightDtype(dtype, hasF16) : dtype,
    precision: precision === 'auto' ? resolvePrecision(precision, hasF16) : precision,
  };
}

/** The adapter limits the run relies on, checked on this machine's adapter (none: not checked). */
function renderAdapterCheck(gpu: GpuRuntime | undefined, problems: readonly string[]): string {
  if (!gpu) return 'Adapter limits: not checked (no WebGPU adapter on this machine)';
  const l = gpu.limits;
  const head =
    `Adapter limits (${gpu.ctx.report.description || gpu.ctx.report.device}): ` +
    `${formatMemorySize(gpu.maxBindingBytes)} per storage binding, ${formatMemorySize(l.maxBufferSize)} per buffer, ` +
    `${l.maxComputeWorkgroupsPerDimension} workgroups per dimension`;
  if (!problems.length)
    return `${head}\n  fit (token tables and the LM head larger than a binding are used in row blocks)`;
  return [head, ...problems.map((p) => `  OVER: ${p}`)].join('\n');
}

function describeRun(model: string, plan: MemoryPlan): string {
  const i = plan.input;
  const c = plan.config;
  const params = parameterCount(c);
  const size = params >= 1e9 ? `${(params / 1e9).toFixed(2)}B` : `${(params / 1e6).toFixed(1)}M`;
  const mode =
    i.mode === 'lsp'
      ? `lsp (d ${i.rank}, r ${i.nnz}, non-projected ${i.nonProjected}; gradients ${i.gradientDtype}, D ${i.stepDtype}, embedding gradient ${i.embeddingGradient})`
      : i.mode;
  return (
    `${model === 'demo' ? 'demo model' : model}: ${c.family}, ${size} parameters, ${c.numLayers} layers; ` +
    `${mode}, batch ${i.batch} x seq ${i.seqLen}, ${i.weightDtype} weights, ${i.precision} precision, ` +
    `${i.checkpointing ? 'with' : 'without'} checkpointing`
  );
}

/** The plan as a table: by category (at the peak and each category's own peak), totals, largest holders, host. */
export function renderPlan(model: string, plan: MemoryPlan, budgetBytes?: number): string {
  const lines = [describeRun(model, plan), ''];
  const row = (name: string, a: string, b = ''): string =>
    `  ${name.padEnd(26)}${a.padStart(12)}${b.padStart(16)}`;
  lines.push(row('GPU memory', 'at the peak', 'category peak'));
  // categories in GpuMemory's order (the plan's records are built in it)
  for (const c of Object.keys(plan.atPeak) as (keyof CategoryBytes)[])
    lines.push(row(c, formatMemorySize(plan.atPeak[c]), formatMemorySize(plan.categoryPeaks[c])));
  lines.push(row('total (live buffers)', formatMemorySize(plan.peakBytes)) + `   at '${plan.peakPhase}'`);
  lines.push(
    row('allocator footprint', formatMemorySize(plan.footprintBytes)) +
      '   with no budget: live + freed buffers kept for reuse',
  );
  if (budgetBytes !== undefined) {
    const over = plan.peakBytes - budgetBytes;
    lines.push(
      row('budget', formatMemorySize(budgetBytes)) +
        (over > 0 ? `   OVER by ${formatMemorySize(over)}` : `   fits, ${formatMemorySize(-over)} to spare`),
    );
  }
  lines.push('', 'Largest at the peak:');
  for (const item of plan.largest.slice(0, 8))
    lines.push(
      `  ${formatMemorySize(item.bytes).padStart(10)}  ${item.category.padEnd(11)} ${item.label}` +
        (item.count > 1 ? ` (${item.count} x ${formatMemorySize(item.bufferBytes)})` : ''),
    );
  lines.push('', `Host (CPU) memory: ${formatMemorySize(plan.host.totalBytes)}`);
  for (const item of plan.host.items)
    lines.push(`  ${formatMemorySize(item.bytes).padStart(10)}  ${item.label}`);
  if (budgetBytes !== undefined && plan.peakBytes > budgetBytes) {
    const suggestions = suggestChanges(plan, budgetBytes);
    lines.push('');
    if (suggestions.length) {
      lines.push('Changes that would fit (predicted peak):');
      for (const s of suggestions) lines.push(`  ${s.change.padEnd(24)} ${formatMemorySize(s.peakBytes)}`);
    } else
      lines.push(
        'No change of --mode, --dtype, --precision, checkpointing, --batch, --seq or --rank fits this budget.',
      );
  }
  return lines.join('\n');
}

/**
 * Prints the plan and checks it against this machine's adapter limits; the exit status is 1 when a
 * budget is given and the run does not fit it, or the run breaks an adapter limit.
 */
export async function planCommand(opts: PlanCommandOptions): Promise<number> {
  const config: ModelConfig = await resolveModelConfig(opts.model);
  const gpu = await GpuRuntime.create().catch(() => undefined);
  try {
    return await planWith(gpu, config, opts);
  } finally {
    gpu?.destroy();
  }
}

async function planWith(
  gpu: GpuRuntime | undefined,
  config: ModelConfig,
  opts: PlanCommandOptions,
): Promise<number> {
  const input = planInputFromFlags(
    { ...opts, ...planDtypes(gpu, opts.dtype, opts.precision) },
    config.maxPositions,
  );
  // the trainer refuses such a rank: the plan says so instead of predicting a run that cannot start
  const tooLarge = input.mode === 'lsp' ? rankProblem(config, input.rank!) : undefined;
  if (tooLarge) throw new Error(tooLarge);
  const budgetBytes = opts.gpuMemory === undefined ? undefined : parseSize(opts.gpuMemory);
  const plan = planMemory(config, {
    ...input,
    ...(budgetBytes !== undefined && { budgetBytes }),
    ...(gpu && { maxBindingBytes: gpu.maxBindingBytes }),
  });
  const limitProblems = gpu ? adapterProblems(gpu, plan, input.weightDtype) : [];
  const fits = (budgetBytes === undefined || plan.peakBytes <= budgetBytes) && limitProblems.length === 0;
  if (opts.json) {
    const suggestions =
      budgetBytes === undefined || plan.peakBytes <= budgetBytes ? [] : suggestChanges(plan, budgetBytes);
    const { config, ...rest } = plan;
    const adapterLimits = gpu ? { adapter: gpu.ctx.report.description, problems: limitProblems } : null;
    console.log(
      JSON.stringify(
        { model: opts.model, config, ...rest, budgetBytes, fits, suggestions, adapterLimits },
        null,
        2,
      ),
    );
  } else {
    const note = input.mode === 'lsp' ? rankNote(config, input.rank!) : undefined;
    console.log(
      renderPlan(opts.model, plan, budgetBytes) +
        `\n\n${renderAdapterCheck(gpu, limitProblems)}` +
        (note ? `\n\n${note}` : ''),
    );
  }
  return fits ? 0 : 1;
}
