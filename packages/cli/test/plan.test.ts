// `lsp-offload plan`, imported from its source (no build needed): flags -> plan input with train's
// defaults, the rendered table, the exit status against a budget, JSON output, a real config.json.
import { trainDefaults } from '../src/flags.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_MODEL_CONFIG, planMemory } from '@lsp-offload/core';
import { planCommand, planInputFromFlags, renderPlan, type PlanCommandOptions } from '../src/plan.js';

const flags = (extra: Partial<PlanCommandOptions> = {}): PlanCommandOptions => ({
  model: 'demo',
  mode: 'lsp',
  nnz: '4',
  dtype: 'f32',
  precision: 'f32',
  checkpointing: true,
  nonProjected: 'adamw',
  gradDtype: 'f16',
  stepDtype: 'f16',
  embeddingGrad: 'rows',
  stagingChunk: '4MiB',
  ...extra,
});

async function run(opts: PlanCommandOptions): Promise<{ status: number; out: string }> {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.join(' '));
  });
  try {
    const status = await planCommand(opts);
    return { status, out: lines.join('\n') };
  } finally {
    log.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('lsp-offload plan', () => {
  it("takes train's defaults for the demo model", () => {
    expect(planInputFromFlags(flags())).toMatchObject({
      batch: 8,
      seqLen: 64,
      rank: Number(trainDefaults('demo').rank),
      nnz: 4,
      mode: 'lsp',
    });
    expect(planInputFromFlags(flags({ model: '/some/dir' }))).toMatchObject({
      batch: 4,
      seqLen: 512,
      rank: 256,
    });
    expect(() => planInputFromFlags(flags({ mode: 'fast' }))).toThrow(
      /--mode must be one of lsp, zero, native/,
    );
    expect(() => planInputFromFlags(flags({ batch: '0' }))).toThrow(/--batch must be a positive integer/);
  });

  it('prints every category, the totals, the largest holders and the host memory', () => {
    const plan = planMemory(DEMO_MODEL_CONFIG, planInputFromFlags(flags()));
    const text = renderPlan('demo', plan, 2 ** 30);
    for (const c of [
      'weights',
      'gradients',
      'optimizer',
      'activations',
      'projectors',
      'staging',
      'workspace',
    ])
      expect(text).toMatch(new RegExp(`^  ${c} +[\\d.]+ (B|KiB|MiB)`, 'm'));
    expect(text).toMatch(/total \(live buffers\) +[\d.]+ MiB +at '/);
    expect(text).toMatch(/budget +1\.00 GiB +fits, [\d.]+ MiB to spare/);
    expect(text).toContain('Largest at the peak:');
    expect(text).toMatch(/Host \(CPU\) memory: [\d.]+ (KiB|MiB)/);
  });

  it('--precision mixed plans f16 activations: a smaller peak, named in the table', () => {
    const f32 = planMemory(DEMO_MODEL_CONFIG, planInputFromFlags(flags({ batch: '16', seq: '128' })));
    const mixed = planMemory(
      DEMO_MODEL_CONFIG,
      planInputFromFlags(flags({ batch: '16', seq: '128', precision: 'mixed' })),
    );
    expect(mixed.categoryPeaks.activations).toBeLessThan(0.8 * f32.categoryPeaks.activations);
    expect(renderPlan('demo', mixed)).toContain('f32 weights, mixed precision');
    expect(() => planInputFromFlags(flags({ precision: 'bf16' }))).toThrow(
      /--precision must be one of mixed, f32, got 'bf16'/,
    );
  });

  it('exits 1 over budget and lists changes that fit', async () => {
    const { status, out } = await run(flags({ mode: 'native', gpuMemory: '16MiB', batch: '64', seq: '128' }));
    expect(status).toBe(1);
    expect(out).toMatch(/budget +16\.0 MiB +OVER by [\d.]+ MiB/);
    expect(out).toMatch(/Changes that would fit \(predicted peak\):\n {2}--batch \d+/);
  });

  it('exits 0 within budget and without one; prints JSON on request', async () => {
    expect((await run(flags({ gpuMemory: '4GiB' }))).status).toBe(0);
    const { status, out } = await run(flags({ json: true }));
    expect(status).toBe(0);
    const json = JSON.parse(out) as { peakBytes: number; fits: boolean; atPeak: Record<string, number> };
    expect(json.fits).toBe(true);
    expect(json.peakBytes).toBe(Object.values(json.atPeak).reduce((a, b) => a + b, 0));
  });

  it('reads only config.json of a Hugging Face directory', async () => {
    const dir = fileURLToPath(new URL('../../core/fixtures/hf/llama-gqa/', import.meta.url));
    const { status, out } = await run(flags({ model: dir, mode: 'zero', batch: '2', seq: '16' }));
    expect(status).toBe(0);
    expect(out).toContain(`${dir}: llama,`);
    expect(out).toMatch(/zero, batch 2 x seq 16, f32 weights, f32 precision, with checkpointing/);
  });

  it('plans a config with 10000 layers (no argument list grows with the layers)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plan-deep-'));
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        model_type: 'llama',
        vocab_size: 101,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 10000,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        max_position_embeddings: 32,
      }),
    );
    const { status, out } = await run(flags({ model: dir, batch: '1', seq: '16', rank: '8' }));
    expect(status).toBe(0);
    expect(out).toMatch(/llama, [\d.]+M parameters, 10000 layers/);
    // the weights of 10000 layers: over 10000 x (q, k, v, o, gate, up, down) f32, about 5 MiB
    expect(out).toMatch(/^ {2}weights +(\d\.\d\d|\d\d\.\d) MiB/m);
  });
});
