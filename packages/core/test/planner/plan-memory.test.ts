// The planner on its own (no GPU): what it counts, how options move it, and the issue's H200 scenario.
import { describe, expect, it } from 'vitest';
import { sizeClass } from '@lsp-offload/gpu-dawn';
import { formatMemorySize, parseModelConfig, planMemory, type PlanInput } from '../../src/index.js';

// TinyLlama-1.1B's shape (the issue's ~1.1B LLaMA-shaped model)
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
const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe('planMemory', () => {
  const h200: PlanInput = {
    batch: 4,
    seqLen: 1024,
    mode: 'lsp',
    rank: 1280,
    nnz: 4,
    checkpointing: true,
    weightDtype: 'f16',
    nonProjected: 'frozen',
  };

  it('counts the weights in their dtype, size-classed like GpuMemory (plus the RoPE table)', () => {
    const f16 = planMemory(tinyLlama, h200);
    // 1.1B parameters x 2 bytes, each tensor rounded up by at most 12.5 %
    expect(f16.categoryPeaks.weights).toBeGreaterThan(2.04 * GiB);
    expect(f16.categoryPeaks.weights).toBeLessThan(2.1 * GiB);
    const f32 = planMemory(tinyLlama, { ...h200, weightDtype: 'f32' });
    expect(f32.categoryPeaks.weights).toBeCloseTo(2 * f16.categoryPeaks.weights, -7);
  });

  it('native keeps f32 gradients and AdamW m, v (and an f32 master of f16 weights) on the GPU', () => {
    const plan = planMemory(tinyLlama, { ...h200, mode: 'native' });
    const weights = plan.categoryPeaks.weights;
    expect(plan.categoryPeaks.gradients).toBeCloseTo(2 * weights, -7);
    expect(plan.categoryPeaks.optimizer).toBeCloseTo(6 * weights, -7);
    expect(plan.host.totalBytes).toBe(0);
  });

  it('offloading modes keep no optimizer state on the GPU and hold it on the host instead', () => {
    const lsp = planMemory(tinyLlama, h200);
    const zero = planMemory(tinyLlama, { ...h200, mode: 'zero' });
    // (only the non-finite gradient count and the host's snapshot of it: 256-byte buffers)
    expect(lsp.categoryPeaks.optimizer).toBe(512);
    expect(zero.categoryPeaks.optimizer).toBe(512);
    expect(lsp.categoryPeaks.staging).toBeGreaterThanOrEqual(64 * MiB);
    // lsp: S (f16), m, v (f32) and D (f16) per projected layer: 12 d^2 bytes x 7 linears x 22 layers
    expect(lsp.host.items[0]!.bytes).toBe(12 * 1280 * 1280 * 7 * 22);
    // zero: fp32 master, m, v, an fp16 (linears) or fp32 gradient, and the fp16 param copy: ~16 bytes each
    expect(zero.host.totalBytes / 1.1e9).toBeGreaterThan(15.5);
    expect(zero.host.totalBytes / 1.1e9).toBeLessThan(16.5);
  });

  it('checkpointing keeps block inputs instead of every tape', () => {
    const with_ = planMemory(tinyLlama, h200);
    const without = planMemory(tinyLlama, { ...h200, checkpointing: false });
    expect(without.categoryPeaks.activations).toBeGreaterThan(5 * with_.categoryPeaks.activations);
  });

  it('the LM head holds one [chunk, vocab] f32 logits buffer, whatever the batch', () => {
    const head = (lossChunkTokens: number): number =>
      planMemory(tinyLlama, { ...h200, lossChunkTokens }).phases.find(
        (x) => x.name === 'LM head + cross-entropy',
      )!.bytes;
    const logits = (chunk: number): number => sizeClass(chunk * 32000 * 4);
    // the per-token statistics ([chunk] f32 x 2) differ by a few KiB
    expect(Math.abs(head(1024) - head(256) - (logits(1024) - logits(256)))).toBeLessThan(16 * 1024);
  });

  it('a footprint at least the live peak; deferring updates moves memory, it does not pile up', () => {
    for (const mode of ['lsp', 'zero', 'native'] as const) {
      const plan = planMemory(tinyLlama, { ...h200, mode });
      expect(plan.footprintBytes).toBeGreaterThanOrEqual(plan.peakBytes);
      expect(Object.values(plan.atPeak).reduce((a, b) => a + b, 0)).toBe(plan.peakBytes);
    }
    // deferred applies free their temporaries right away: the peak moves by at most a block's steps
    const none = planMemory(tinyLlama, { ...h200, deferredBlocks: 0 }).peakBytes;
    const all = planMemory(tinyLlama, h200).peakBytes;
    expect(Math.abs(all - none)).toBeLessThan(0.1 * none);
  });

  it("lsp's token-embedding gradient holds the rows every micro-batch touches, not the vocabulary's", () => {
    const rows = { ...h200, batch: 1, nonProjected: 'adamw' as const, embeddingGradient: 'rows' as const };
    const embeddingBackward = (gradAccum: number, embeddingGradient: 'rows' | 'dense' = 'rows') =>
      planMemory(tinyLlama, { ...rows, gradAccum, embeddingGradient }).phases.find(
        (p) => p.name === 'embedding backward',
      )!.bytes;
    const rowBytes = 2048 * 4;
    // 1024 then 3 x 1024 touched rows (and their i32 row ids per micro-batch), against 32000 rows
    const grown = embeddingBackward(3) - embeddingBackward(1);
    expect(grown).toBeGreaterThanOrEqual(2 * 1024 * rowBytes);
    expect(grown).toBeLessThan(2 * 1024 * rowBytes + 2 * MiB);
    expect(embeddingBackward(1, 'dense') - embeddingBackward(1)).toBeGreaterThan(
      (32000 - 1024 - 64) * rowBytes,
    );
    expect(() => planMemory(tinyLlama, { ...rows, gradAccum: 0 })).toThrow(
      /gradAccum must be a positive integer/,
    );
  });

  it('rejects impossible runs with the flag to fix', () => {
    expect(() => planMemory(tinyLlama, { ...h200, seqLen: 4096 })).toThrow(
      /--seq 4096 exceeds the model's 2048/,
    );
    expect(() => planMemory(tinyLlama, { ...h200, rank: 4, nnz: 8 })).toThrow(/--nnz 8 exceeds --rank 4/);
    expect(() => planMemory(tinyLlama, { ...h200, batch: 0 })).toThrow(/batch must be a positive integer/);
  });

  it("the issue's H200 scenario: TinyLlama shape, 4 x 1024, f16 weights, checkpointing, vs 4 GiB", () => {
    const rows = [
      ['lsp (d 1280, r 4)', h200],
      ['lsp, no update deferred', { ...h200, deferredBlocks: 0 }],
      ['zero', { ...h200, mode: 'zero' }],
      ['native', { ...h200, mode: 'native' }],
    ] as const;
    const table = ['| run | GPU peak | at | footprint | host | fits 4 GiB |', '|---|---|---|---|---|---|'];
    for (const [name, input] of rows) {
      const p = planMemory(tinyLlama, { ...input, budgetBytes: 4 * GiB });
      table.push(
        `| ${name} | ${formatMemorySize(p.peakBytes)} | ${p.peakPhase} | ${formatMemorySize(p.footprintBytes)} | ` +
          `${formatMemorySize(p.host.totalBytes)} | ${p.peakBytes <= 4 * GiB ? 'yes' : 'no'} |`,
      );
    }
    console.log(table.join('\n'));
    // S of d = 1280 sent as fp16 (3.125 MiB) is the largest transfer of a block: it is the chunk; as f32
    // (6.25 MiB) it is above the 4 MiB cap, and the cap is the chunk
    expect(planMemory(tinyLlama, h200).input.stagingChunkBytes).toBe(3.125 * MiB);
    expect(planMemory(tinyLlama, { ...h200, gradientDtype: 'f32' }).input.stagingChunkBytes).toBe(4 * MiB);
    // zero fits once its staging rings give up the slots beyond the budget
    const zero = { ...h200, mode: 'zero' } as const;
    expect(planMemory(tinyLlama, zero).peakBytes).toBeGreaterThan(4 * GiB);
    expect(planMemory(tinyLlama, { ...zero, budgetBytes: 4 * GiB }).peakBytes).toBeLessThan(4 * GiB);
    expect(planMemory(tinyLlama, { ...h200, mode: 'native' }).peakBytes).toBeGreaterThan(16 * GiB);
  });
});
