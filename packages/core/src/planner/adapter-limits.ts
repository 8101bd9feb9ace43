// The adapter limits a training run relies on, checked from the plan before anything is allocated or
// recorded (a run over one would otherwise fail mid-step with a screen of Dawn validation errors):
//   - every buffer within maxBufferSize;
//   - every tensor bound whole within maxStorageBufferBindingSize: activations and workspace (they grow
//     with --batch and --seq), the parameters and their state, except the token tables and the LM head,
//     which are bound in row blocks (binding-blocks.ts; one aligned block of rows must fit);
//   - 64 tokens of LM-head logits within one binding (the smallest loss chunk);
//   - the attention grid: one workgroup row per sequence and head, within maxComputeWorkgroupsPerDimension.
// Matmul grids depend on the kernel's tile choice: Trainer.create asks the kernels (dispatch-limits.ts).
import { listParameters } from '../hf/index.js';
import { isRowBlocked } from '../model/lm-head.js';
import { formatMemorySize as formatBytes } from '../util/format-bytes.js';
import { parameterLayout } from './parameter-buffers.js';
import { planGeometry, type MemoryPlan } from './plan-memory.js';
import type { PlannedBuffer } from './planned-buffer.js';
import { stepPhases } from './step-phases.js';

export interface AdapterLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  /** Default 256 (the WebGPU default). */
  readonly minStorageBufferOffsetAlignment?: number;
}

/** Every limit the plan's run would break, as sentences naming the tensor and what to change. */
export function adapterLimitProblems(plan: MemoryPlan, limits: AdapterLimits): string[] {
  const { config, input } = plan;
  const maxBinding = limits.maxStorageBufferBindingSize;
  const align = limits.minStorageBufferOffsetAlignment ?? 256;
  const tokens = input.batch * input.seqLen;
  const geometry = `--batch ${input.batch} x --seq ${input.seqLen}`;
  const problems: string[] = [];
  const blockedNames = listParameters(config)
    .filter(isRowBlocked)
    .map((s) => s.name);
  const isBlocked = (b: PlannedBuffer) =>
    blockedNames.some((n) => b.label === n || b.label.endsWith(` ${n}`));

  const buffers = new Map<string, PlannedBuffer>();
  for (const phase of stepPhases(config, parameterLayout(config), input, planGeometry(config, input)))
    for (const b of phase.buffers) buffers.set(`${b.label}|${b.bytes}`, b);
  for (const b of buffers.values()) {
    if (b.bytes > limits.maxBufferSize)
      problems.push(
        `${b.label} needs a buffer of ${formatBytes(b.bytes)}, over the adapter's maxBufferSize ${formatBytes(limits.maxBufferSize)}`,
      );
    const bound = b.bindingBytes;
    if (b.usage !== 'storage' || bound === undefined || bound <= maxBinding) continue;
    if (isBlocked(b)) continue; // bound in row blocks; one block is checked below
    if (b.category === 'activations' || b.category === 'workspace') {
      const fitting = Math.floor((tokens * maxBinding) / bound);
      problems.push(
        `${b.label} takes ${formatBytes(bound)} at ${geometry}, over the adapter's maxStorageBufferBindingSize ` +
          `${formatBytes(maxBinding)}: lower --batch or --seq (at most about ${fitting} tokens per step)`,
      );
    } else {
      problems.push(
        `${b.label} (${formatBytes(bound)}) exceeds the adapter's maxStorageBufferBindingSize ${formatBytes(maxBinding)} ` +
          '(only the token tables and the LM head are split across bindings)',
      );
    }
  }
  for (const spec of listParameters(config).filter(isRowBlocked)) {
    const rowBytes = 4 * spec.shape[1]!; // f32: the gradients and optimizer state, the widest rows
    const alignedRows = align / gcd(rowBytes, align);
    if (alignedRows * rowBytes > maxBinding)
      problems.push(
        `${spec.name}: ${alignedRows} rows of ${formatBytes(rowBytes)} (the fewest that start aligned) exceed the ` +
          `adapter's maxStorageBufferBindingSize ${formatBytes(maxBinding)}`,
      );
  }
  const logitRows = 64 * 4 * config.vocabSize;
  if (logitRows > maxBinding)
    problems.push(
      `64 tokens of LM-head logits (${formatBytes(logitRows)} for ${config.vocabSize} tokens of vocabulary) exceed ` +
        `the adapter's maxStorageBufferBindingSize ${formatBytes(maxBinding)}`,
    );
  const maxGroups = limits.maxComputeWorkgroupsPerDimension;
  if (input.batch > maxGroups)
    problems.push(
      `--batch ${input.batch}: attention runs one workgroup row per sequence, at most ${maxGroups} ` +
        "(the adapter's maxComputeWorkgroupsPerDimension): lower --batch (and raise --grad-accum)",
    );
  if (config.numHeads > maxGroups)
    problems.push(
      `${config.numHeads} attention heads exceed the adapter's ${maxGroups} workgroups per dimension`,
    );
  return problems;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
