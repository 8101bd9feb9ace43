// The planner against what GpuMemory actually sees: small LLaMA and GPT-2 models trained for two steps in
// every mode, with and without checkpointing, f32 and f16 weights, mixed precision (f16 activations) and
// (LLaMA) f32, each on a fresh GpuRuntime.
//   live peak   the most bytes in use at once (what a budget must hold)
//   footprint   GpuMemory.stats().peakBytes (live + freed buffers kept for reuse)
//   categories  GpuMemory.stats().byCategory[c].peakBytes
// The offloading modes' staging rings (2 x 4 x 8 MiB) would dwarf these models, so totals are compared
// without them (staging is compared on its own). The lsp and zero gradients and workspace depend on how
// far the CPU and the transfers trail the GPU, and the GPU timer's query readbacks on how many passes a
// submit holds: they must lie between the plan's best case (nothing in flight) and its default worst case.
import { afterAll, describe, expect, it } from 'vitest';
import { GpuRuntime, MEMORY_CATEGORIES, type MemoryCategory } from '@lsp-offload/gpu-dawn';
import { parseModelConfig, planMemory, type ModelConfig, type TrainMode } from '../../src/index.js';
import { measureTraining } from './measure.js';

const llama = parseModelConfig({
  model_type: 'llama',
  vocab_size: 200,
  hidden_size: 96,
  intermediate_size: 160,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
});
const gpt2 = parseModelConfig({
  model_type: 'gpt2',
  vocab_size: 200,
  n_embd: 96,
  n_layer: 2,
  n_head: 4,
  n_positions: 64,
});

const f16 = await (async () => {
  const gpu = await GpuRuntime.create();
  const has = gpu.has('shader-f16');
  gpu.destroy();
  return has;
})();

interface Case {
  name: string;
  config: ModelConfig;
  mode: TrainMode;
  checkpointing: boolean;
  weightDtype: 'f32' | 'f16';
  nonProjected: 'frozen' | 'adamw';
  precision: 'mixed' | 'f32';
}

const cases: Case[] = [];
for (const [name, config] of [
  ['llama', llama],
  ['gpt2', gpt2],
] as const)
  for (const mode of ['native', 'zero', 'lsp'] as const)
    for (const checkpointing of [true, false])
      for (const precision of f16
        ? name === 'llama'
          ? (['mixed', 'f32'] as const)
          : (['mixed'] as const)
        : (['f32'] as const)) {
        // f16 weights in half the cases of each family (where the adapter has shader-f16)
        const half = f16 && checkpointing === (name === 'gpt2');
        cases.push({
          name,
          config,
          mode,
          checkpointing,
          weightDtype: half ? 'f16' : 'f32',
          nonProjected: 'frozen',
          precision,
        });
      }
// lsp training the rest too: dense fp16 gradients, and LLaMA's untied embedding sent as touched rows
for (const [name, config] of [
  ['llama', llama],
  ['gpt2', gpt2],
] as const)
  cases.push({
    name,
    config,
    mode: 'lsp',
    checkpointing: true,
    weightDtype: 'f32',
    nonProjected: 'adamw',
    precision: f16 ? 'mixed' : 'f32',
  });

const BATCH = 2;
const SEQ = 48;
const SLACK = 4096; // a few small buffers (loss, counters) may differ by a size class
const rows: string[] = [];
const KiB = (b: number): string => (b / 1024).toFixed(1);
const rel = (measured: number, predicted: number): number => Math.abs(measured - predicted) / predicted;

afterAll(() => {
  console.log(
    [
      '| model | mode | ckpt | weights | precision | live peak KiB measured / predicted | footprint KiB measured / predicted | activations | gradients | workspace |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n'),
  );
});

describe('predicted vs measured GPU memory', () => {
  it.each(cases)(
    '$name $mode checkpointing=$checkpointing $weightDtype $precision $nonProjected',
    async (c) => {
      const options = {
        mode: c.mode,
        precision: c.precision,
        checkpointing: c.checkpointing,
        rank: 32,
        nnz: 4,
        lossChunkTokens: 64,
        nonProjected: c.nonProjected,
      };
      const input = { ...options, batch: BATCH, seqLen: SEQ, weightDtype: c.weightDtype };
      const plan = planMemory(c.config, input);
      // nothing in flight, and either every update applied inside the backward or every one deferred
      const noDeferral = planMemory(c.config, { ...input, leadBlocks: 0, deferredBlocks: 0 });
      const allDeferred = planMemory(c.config, { ...input, leadBlocks: 0 });
      const bestCase = (k: MemoryCategory): number =>
        Math.min(noDeferral.categoryPeaks[k], allDeferred.categoryPeaks[k]);
      const m = await measureTraining({
        config: c.config,
        options,
        weightDtype: c.weightDtype,
        batch: BATCH,
        seqLen: SEQ,
      });

      // the staging rings exactly; the GPU timer's query readbacks (a few KiB, 'staging' too) within its bound
      const { stagingSlots, stagingChunkBytes } = plan.input;
      const rings = c.mode === 'native' ? 0 : (stagingSlots.down + stagingSlots.up) * stagingChunkBytes;
      expect(m.categoryPeaks.staging).toBeGreaterThanOrEqual(rings);
      expect(m.categoryPeaks.staging).toBeLessThanOrEqual(plan.categoryPeaks.staging);
      const staging = rings;
      const live = m.livePeakBytes - staging;
      const footprint = m.footprintBytes - staging;
      rows.push(
        `| ${c.name} | ${c.mode}${c.nonProjected === 'adamw' ? ' (all trained)' : ''} | ${c.checkpointing ? 'yes' : 'no'} | ${c.weightDtype} | ${c.precision} | ${KiB(live)} / ${KiB(plan.peakBytes - staging)} | ` +
          `${KiB(footprint)} / ${KiB(plan.footprintBytes - staging)} | ` +
          (['activations', 'gradients', 'workspace'] as const)
            .map((k) => `${KiB(m.categoryPeaks[k])} / ${KiB(plan.categoryPeaks[k])}`)
            .join(' | ') +
          ' |',
      );
      expect(rel(live, plan.peakBytes - staging)).toBeLessThan(0.1);
      expect(rel(footprint, plan.footprintBytes - staging)).toBeLessThan(0.1);

      const timingDependent = (k: MemoryCategory): boolean =>
        c.mode !== 'native' && (k === 'gradients' || k === 'workspace');
      for (const k of MEMORY_CATEGORIES.filter((k) => k !== 'staging')) {
        const measured = m.categoryPeaks[k];
        if (timingDependent(k)) {
          expect(measured, k).toBeLessThanOrEqual(plan.categoryPeaks[k] * 1.1 + SLACK);
          expect(measured, k).toBeGreaterThanOrEqual(bestCase(k) * 0.9 - SLACK);
        } else {
          expect(Math.abs(measured - plan.categoryPeaks[k]), k).toBeLessThanOrEqual(
            Math.max(SLACK, 0.1 * plan.categoryPeaks[k]),
          );
        }
      }
    },
  );
});
