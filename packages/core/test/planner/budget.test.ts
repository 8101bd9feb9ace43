// Budget checks: the error says by how much a run is over and suggests changes that fit (each re-planned);
// Trainer.create refuses an over-budget run before allocating anything but the caller's weights, and a
// run whose budget is exactly the predicted peak trains without running out.
import { describe, expect, it } from 'vitest';
import { DEFAULT_SLOTS, GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  MemoryBudgetError,
  ModelWeights,
  Rng,
  Trainer,
  checkBudget,
  parseModelConfig,
  planMemory,
  type PlanInput,
} from '../../src/index.js';

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

// TinyLlama-1.1B's shape: big enough that the staging rings (64 MiB) do not decide what fits
const tinyLlama = parseModelConfig({
  model_type: 'llama',
  vocab_size: 32000,
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 22,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  max_position_embeddings: 2048,
});

function budgetError(input: PlanInput, budget: number): MemoryBudgetError {
  const plan = planMemory(tinyLlama, input);
  try {
    checkBudget(plan, budget);
  } catch (e) {
    if (e instanceof MemoryBudgetError) return e;
    throw e;
  }
  throw new Error('checkBudget accepted an over-budget plan');
}

describe('checkBudget', () => {
  const base: PlanInput = {
    mode: 'native',
    batch: 4,
    seqLen: 1024,
    weightDtype: 'f32',
    checkpointing: false,
    nonProjected: 'frozen',
  };

  it('accepts a plan at the budget and refuses one byte less, saying by how much and where', () => {
    const plan = planMemory(tinyLlama, base);
    expect(() => checkBudget(plan, plan.peakBytes)).not.toThrow();
    const e = budgetError(base, plan.peakBytes - 1);
    expect(e.message).toContain('(1 B over)');
    expect(e.message).toContain(`'${plan.peakPhase}'`);
    expect(e.message).toMatch(/optimizer [\d.]+ GiB/);
    expect(e.plan.peakBytes).toBe(plan.peakBytes);
  });

  it('suggests mixed precision where f16 activations fit', () => {
    const lsp: PlanInput = { ...base, mode: 'lsp', rank: 1280, checkpointing: true, weightDtype: 'f16' };
    const mixed = planMemory(tinyLlama, { ...lsp, precision: 'mixed' });
    const f32 = planMemory(tinyLlama, lsp);
    expect(mixed.peakBytes).toBeLessThan(f32.peakBytes);
    const e = budgetError(lsp, mixed.peakBytes);
    expect(e.suggestions.map((s) => s.change)).toContain('--precision mixed');
    expect(e.message).toContain('f32 precision');
  });

  it('suggests changes that fit, each with its re-planned peak', () => {
    const budget = 16 * 2 ** 30; // native's gradients and AdamW state (12 GiB in f32) leave no room
    expect(planMemory(tinyLlama, base).peakBytes).toBeGreaterThan(budget);
    const e = budgetError(base, budget);
    const changes = e.suggestions.map((s) => s.change);
    expect(changes).toContain('--mode lsp');
    expect(changes).toContain('--mode zero');
    expect(changes).not.toContain('drop --no-checkpointing'); // it saves activations, not enough
    for (const s of e.suggestions) {
      expect(s.peakBytes).toBeLessThanOrEqual(budget);
      expect(planMemory(tinyLlama, s.input).peakBytes).toBe(s.peakBytes);
      expect(e.message).toContain(s.change);
    }
  });

  it('finds the largest batch, sequence and rank that fit', () => {
    const lsp: PlanInput = {
      mode: 'lsp',
      batch: 4,
      seqLen: 1024,
      rank: 1280,
      nnz: 4,
      weightDtype: 'f16',
      checkpointing: true,
      nonProjected: 'frozen',
    };
    const plan = planMemory(tinyLlama, lsp);
    const budget = plan.peakBytes - 1;
    const e = budgetError(lsp, budget);
    const batch = e.suggestions.find((s) => s.change.startsWith('--batch'));
    expect(batch?.input.batch).toBe(3);
    const seq = e.suggestions.find((s) => s.change.startsWith('--seq'))!;
    expect(seq.input.seqLen % 64).toBe(0);
    expect(planMemory(tinyLlama, { ...lsp, seqLen: seq.input.seqLen + 64 }).peakBytes).toBeGreaterThan(
      budget,
    );
    const rank = e.suggestions.find((s) => s.change.startsWith('--rank'))!;
    expect(rank.input.rank! % 64).toBe(0);
    expect(planMemory(tinyLlama, { ...lsp, rank: rank.input.rank! + 64 }).peakBytes).toBeGreaterThan(budget);
  });

  it('combines savings when no single change fits, and says so when nothing fits', () => {
    const saving = planMemory(tinyLlama, {
      ...base,
      mode: 'lsp',
      weightDtype: 'f16',
      precision: 'mixed',
      checkpointing: true,
    });
    const e = budgetError(base, saving.peakBytes);
    expect(e.suggestions.map((s) => s.change)).toEqual([
      '--mode lsp, --dtype f16, --precision mixed, drop --no-checkpointing',
    ]);
    const weights = planMemory(tinyLlama, base).atPeak.weights;
    const none = budgetError(base, weights / 4);
    expect(none.suggestions).toEqual([]);
    expect(none.message).toMatch(/Nothing fits: even one token with every saving .* needs/);
  });
});

const f16 = await (async () => {
  const gpu = await GpuRuntime.create();
  const has = gpu.has('shader-f16');
  gpu.destroy();
  return has;
})();

describe('Trainer.create under a budget', () => {
  const options = {
    precision: f16 ? ('mixed' as const) : ('f32' as const),
    mode: 'lsp' as const,
    rank: 32,
    nnz: 4,
    checkpointing: true,
    threads: 2,
    nonProjected: 'frozen' as const,
  };
  const plannedBatch = { batch: 2, seqLen: 48 };
  const plan = planMemory(llama, { ...options, ...plannedBatch, weightDtype: 'f32' });

  // the least the trainer's staging rings can shrink to under a budget (a budget of 1 byte asks for it)
  const minimal = planMemory(llama, { ...options, ...plannedBatch, weightDtype: 'f32', budgetBytes: 1 });

  it('sizes the staging rings for leadBlocks + 1 blocks, and shrinks them to fit a budget', () => {
    const { down, up } = plan.input.stagingSlots;
    // chunks no larger than the largest tensor a block moves (S: 32 x 32 f32 = 4 KiB), not the 4 MiB cap
    expect(plan.input.stagingChunkBytes).toBe(4096);
    expect(down).toBeGreaterThan(DEFAULT_SLOTS);
    expect(up).toBeGreaterThan(DEFAULT_SLOTS + 2);
    const chunk = plan.input.stagingChunkBytes;
    // a little short: the upload ring gives up two slots, the download ring stays whole
    const budget = plan.peakBytes - 2 * chunk + 17;
    const fitted = planMemory(llama, {
      ...options,
      ...plannedBatch,
      weightDtype: 'f32',
      budgetBytes: budget,
    });
    expect(fitted.input.stagingSlots).toEqual({ down, up: up - 2 });
    expect(fitted.peakBytes).toBe(plan.peakBytes - 2 * chunk);
    expect(minimal.peakBytes).toBeLessThan(fitted.peakBytes);
    expect(minimal.input.stagingSlots.up).toBe(DEFAULT_SLOTS);
  });

  it('refuses a run over budget before allocating anything beyond the weights', async () => {
    const gpu = await GpuRuntime.create({ budgetBytes: minimal.peakBytes - 1 });
    try {
      const weights = ModelWeights.random(gpu, llama, 'f32', new Rng(1));
      const used = gpu.memory.stats().usedBytes;
      await expect(Trainer.create(gpu, weights, { ...options, plannedBatch })).rejects.toThrow(
        MemoryBudgetError,
      );
      expect(gpu.memory.stats().usedBytes).toBe(used);
    } finally {
      gpu.destroy();
    }
  });

  // The budget is the predicted LIVE peak, below the allocator's footprint: GpuMemory must drop freed
  // buffers on the way, only those no unsubmitted command still uses, and the model submits at every
  // block boundary so freed buffers become reclaimable. Both offloading modes, several steps.
  for (const [mode, nonProjected] of [
    ['lsp', 'frozen'],
    ['lsp', 'adamw'], // dense fp16 gradients with scales, the embedding's touched rows
    ['zero', 'frozen'],
  ] as const) {
    it(`${mode} (non-projected ${nonProjected}) trains without a GPU error with the budget set to the predicted live peak`, async () => {
      const o = { ...options, mode, nonProjected };
      const p = planMemory(llama, { ...o, ...plannedBatch, weightDtype: 'f32' });
      expect(p.peakBytes).toBeLessThan(p.footprintBytes);
      const gpu = await GpuRuntime.create({ budgetBytes: p.peakBytes });
      try {
        const weights = ModelWeights.random(gpu, llama, 'f32', new Rng(1));
        const trainer = await Trainer.create(gpu, weights, { ...o, plannedBatch });
        const rng = new Rng(2);
        for (let s = 0; s < 3; s++) {
          const ids = Int32Array.from({ length: 96 }, () => rng.below(llama.vocabSize));
          await trainer.trainStep({ ...plannedBatch, inputIds: ids, labels: ids });
        }
        await trainer.flush();
        await trainer.destroy();
        await gpu.sync('training under the budget');
        expect(gpu.memory.stats().peakBytes).toBeLessThanOrEqual(p.peakBytes);
      } finally {
        gpu.destroy();
      }
    });
  }
});
