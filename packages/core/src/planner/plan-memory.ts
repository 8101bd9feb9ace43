// planMemory: the GPU memory a training run will need, predicted from the model config and the run's
// options alone (no GPU, nothing loaded), so `lsp-offload plan` and Trainer.create can refuse a run that
// cannot fit before allocating anything big.
//
// Two totals, because GpuMemory keeps freed buffers for reuse:
//   peakBytes      the most bytes of LIVE buffers at once. A budget must hold this: when a request does
//                  not fit, GpuMemory drops its cache of freed buffers and retries.
//   footprintBytes what an unbudgeted GpuMemory ends up holding (its stats().peakBytes): for each size
//                  class the most buffers of it ever alive at once, since a new one is created only when
//                  none is free.
import { DEFAULT_SLOTS, MEMORY_CATEGORIES, type MemoryCategory } from '@lsp-offload/gpu-dawn';
import type { ModelConfig } from '../hf/index.js';
import { stepGeometry, type StepGeometry } from './activation-buffers.js';
import { planHostMemory, type HostMemoryPlan } from './host-memory.js';
import { blockTransfers, parameterLayout, stagingChunks } from './parameter-buffers.js';
import { resolvePlanInput, type PlanInput, type ResolvedPlanInput } from './plan-input.js';
import { mergeBuffers, totalBytes, type PlannedBuffer } from './planned-buffer.js';
import { stepPhases } from './step-phases.js';
import { maxOf } from '../util/stats.js';

/**
 * The fewest slots a ring gets where the budget allows: 4 MiB chunks x 8 slots was the fastest on
 * average in gpu-dawn's transfer sweep on the H200 (2026-12-03). Budget cuts go down to DEFAULT_SLOTS.
 */
export const FASTEST_RING_SLOTS = 8;

export type CategoryBytes = Record<MemoryCategory, number>;

export interface MemoryPlanItem {
  label: string;
  category: MemoryCategory;
  /** How many such buffers are alive at the peak, and their size each (size-classed). */
  count: number;
  bufferBytes: number;
  /** count x bufferBytes */
  bytes: number;
}

export interface MemoryPlan {
  config: ModelConfig;
  input: ResolvedPlanInput;
  /** The most bytes of live GPU buffers at once: what a --gpu-memory budget must hold. */
  peakBytes: number;
  /** Where in the step the peak is. */
  peakPhase: string;
  /** The peak split by category (sums to peakBytes). */
  atPeak: CategoryBytes;
  /** Each category's own peak (like GpuMemory.stats().byCategory[c].peakBytes; may fall in other phases). */
  categoryPeaks: CategoryBytes;
  /** What an unbudgeted GpuMemory holds after a few steps: live plus freed buffers kept for reuse. */
  footprintBytes: number;
  /** The largest holders at the peak, biggest first. */
  largest: MemoryPlanItem[];
  /** Every modelled moment of a step with its live bytes, in step order. */
  phases: { name: string; bytes: number }[];
  /** CPU memory of the offloading modes (optimizer state, projector copies). */
  host: HostMemoryPlan;
}

function emptyCategories(): CategoryBytes {
  return Object.fromEntries(MEMORY_CATEGORIES.map((c) => [c, 0])) as CategoryBytes;
}

function byCategory(buffers: readonly PlannedBuffer[]): CategoryBytes {
  const out = emptyCategories();
  for (const b of buffers) out[b.category] += b.bytes * b.count;
  return out;
}

/**
 * Predict the GPU (and host) memory of training `config` with `input` (see PlanInput for defaults).
 * The offloading modes' staging rings are sized here unless given: enough slots for leadBlocks + 1 blocks'
 * transfers, so a block's copies are recorded right behind its backward instead of waiting for slots the
 * GPU frees only after later blocks (which starves it); under `budgetBytes` they shrink to fit.
 */
export function planMemory(config: ModelConfig, input: PlanInput): MemoryPlan {
  if (input.stagingSlots || input.mode === 'native') return planWithStaging(config, input);
  const minimal = { down: DEFAULT_SLOTS, up: DEFAULT_SLOTS };
  const layout = parameterLayout(config);
  // stagingChunkBytes is an upper bound: a small model's rings get chunks its largest block tensor fills
  const asked = resolvePlanInput({ ...input, stagingSlots: minimal }, config.numLayers);
  const transfers = Array.from({ length: config.numLayers }, (_, l) => blockTransfers(layout, l, asked));
  const largest = maxOf(
    transfers.flatMap((t) => [...t.down, ...t.up]),
    0,
  );
  const stagingChunkBytes = Math.min(asked.stagingChunkBytes, Math.max(4096, Math.ceil(largest / 256) * 256));
  input = { ...input, stagingChunkBytes };
  const run = resolvePlanInput({ ...input, stagingSlots: minimal }, config.numLayers);
  const down = maxOf(transfers.map((t) => stagingChunks(t.down, stagingChunkBytes)));
  const up = maxOf(transfers.map((t) => stagingChunks(t.up, stagingChunkBytes)));
  const blocksInFlight = run.pipelined ? run.leadBlocks + 1 : 1;
  const slots = {
    down: Math.max(FASTEST_RING_SLOTS, blocksInFlight * down),
    up: Math.max(FASTEST_RING_SLOTS, blocksInFlight * up),
  };
  const budget = run.budgetBytes;
  const chunk = run.stagingChunkBytes;
  const withSlots = (down: number, up: number) =>
    planWithStaging(config, { ...input, stagingSlots: { down, up } });
  const wanted = withSlots(slots.down, slots.up);
  if (wanted.peakBytes <= budget) return wanted;
  // the rings live through the whole step, so every slot given up lowers the peak by one chunk. First
  // the upload ring: a whole download ring lets gradients go the moment they are made.
  const upCut = Math.ceil((wanted.peakBytes - budget) / chunk);
  if (slots.up - upCut >= DEFAULT_SLOTS) return withSlots(slots.down, slots.up - upCut);
  const wholeDown = withSlots(slots.down, DEFAULT_SLOTS);
  // then both: gradients may now wait for download slots, which the plan counts
  const least = withSlots(DEFAULT_SLOTS, DEFAULT_SLOTS);
  if (least.peakBytes > budget) return least.peakBytes < wholeDown.peakBytes ? least : wholeDown;
  let spare = Math.floor((budget - least.peakBytes) / chunk);
  const downSlots = Math.min(slots.down - 1, DEFAULT_SLOTS + spare);
  spare -= downSlots - DEFAULT_SLOTS;
  return withSlots(downSlots, Math.min(slots.up, DEFAULT_SLOTS + spare));
}

/** The step's geometry, with the LM-head chunk the Transformer takes under the binding limit. */
export function planGeometry(config: ModelConfig, run: ResolvedPlanInput): StepGeometry {
  return stepGeometry(run.batch, run.seqLen, run.lossChunkTokens, config.vocabSize, run.maxBindingBytes);
}

function planWithStaging(config: ModelConfig, input: PlanInput): MemoryPlan {
  const run = resolvePlanInput(input, config.numLayers);
  const layout = parameterLayout(config);
  const geometry = planGeometry(config, run);
  if (run.seqLen > config.maxPositions)
    throw new RangeError(
      `memory plan: --seq ${run.seqLen} exceeds the model's ${config.maxPositions} positions`,
    );
  const phases = stepPhases(config, layout, run, geometry);

  let peak = phases[0]!;
  let peakBytes = -1;
  const categoryPeaks = emptyCategories();
  const maxCount = new Map<string, { bytes: number; count: number }>();
  const summary: MemoryPlan['phases'] = [];
  for (const phase of phases) {
    const bytes = totalBytes(phase.buffers);
    summary.push({ name: phase.name, bytes });
    if (bytes > peakBytes) {
      peakBytes = bytes;
      peak = phase;
    }
    const cats = byCategory(phase.buffers);
    for (const c of MEMORY_CATEGORIES) categoryPeaks[c] = Math.max(categoryPeaks[c], cats[c]);
    const counts = new Map<string, number>();
    for (const b of phase.buffers) {
      const key = `${b.usage}:${b.bytes}`;
      counts.set(key, (counts.get(key) ?? 0) + b.count);
    }
    for (const [key, count] of counts) {
      const bytes = Number(key.slice(key.indexOf(':') + 1));
      const seen = maxCount.get(key);
      if (!seen || count > seen.count) maxCount.set(key, { bytes, count });
    }
  }
  let footprintBytes = 0;
  for (const { bytes, count } of maxCount.values()) footprintBytes += bytes * count;

  const largest = mergeBuffers(peak.buffers)
    .map((b) => ({
      label: b.label,
      category: b.category,
      count: b.count,
      bufferBytes: b.bytes,
      bytes: b.bytes * b.count,
    }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 10);
  return {
    config,
    input: run,
    peakBytes,
    peakPhase: peak.name,
    atPeak: byCategory(peak.buffers),
    categoryPeaks,
    footprintBytes,
    largest,
    phases: summary,
    host: planHostMemory(layout, run),
  };
}
