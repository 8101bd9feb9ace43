// Checks against fixtures made with Hugging Face transformers/tokenizers by
// fixtures/make_hf_fixtures.py (run on a machine with torch; the output is committed under
// fixtures/hf/). Without the fixtures these tests fail, saying how to make them: they never skip.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CheckpointDir,
  HfTokenizer,
  SafetensorsFile,
  listParameters,
  loadModelConfig,
  openHfModel,
  type ModelConfig,
} from '../src/hf/index.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/hf/', import.meta.url));
const HOW_TO_MAKE =
  'make them with `python3 packages/core/fixtures/make_hf_fixtures.py packages/core/fixtures/hf` on a machine with ' +
  'torch, transformers and tokenizers (the GPU machine has them), then commit packages/core/fixtures/hf';

function fixture(...parts: string[]): string {
  const path = join(FIXTURES, ...parts);
  if (!existsSync(path)) throw new Error(`HF fixture missing: ${path}; ${HOW_TO_MAKE}`);
  return path;
}

const MODELS: Record<string, (config: ModelConfig, rawConfig: Record<string, unknown>) => void> = {
  'llama-gqa': (c, raw) => {
    expect(c.family).toBe('llama');
    expect(c.numKeyValueHeads).toBeLessThan(c.numHeads);
    expect(c.tieWordEmbeddings).toBe(false);
    expect(c.positions).toEqual({ kind: 'rope', theta: 10000 });
    expect(raw.rope_theta).toBe(10000);
  },
  'llama-tied': (c) => {
    expect(c.family).toBe('llama');
    expect(c.tieWordEmbeddings).toBe(true);
    expect([c.attentionBias, c.mlpBias]).toEqual([true, true]);
    expect(c.positions).toEqual({ kind: 'rope', theta: 50000 });
  },
  gpt2: (c) => {
    expect(c.family).toBe('gpt2');
    expect(c.tieWordEmbeddings).toBe(true);
    expect(c.activation).toBe('gelu_new');
  },
};

/** transformers' causal-LM loss from the reference logits, in float64. */
function causalLmLoss(
  logits: Float64Array,
  labels: Int32Array,
  batch: number,
  seq: number,
  vocab: number,
): number {
  let sum = 0;
  let count = 0;
  for (let b = 0; b < batch; b++)
    for (let t = 0; t + 1 < seq; t++) {
      const label = labels[b * seq + t + 1]!;
      if (label === -100) continue;
      const row = logits.subarray((b * seq + t) * vocab, (b * seq + t + 1) * vocab);
      const max = row.reduce((m, v) => Math.max(m, v), -Infinity);
      const logSumExp = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      sum += logSumExp - row[label]!;
      count++;
    }
  return sum / count;
}

async function checkReference(name: string, config: ModelConfig, valueDtype: 'F64' | 'F32'): Promise<void> {
  const reference = await SafetensorsFile.open(fixture(name, 'reference.safetensors'));
  try {
    const params = listParameters(config);
    const inputIds = await reference.readInt32('input_ids');
    const labels = await reference.readInt32('labels');
    expect([inputIds.dtype, inputIds.shape]).toEqual(['I32', [2, 11]]);
    expect(labels.shape).toEqual([2, 11]);
    expect(Array.from(labels.data).filter((l) => l === -100).length).toBeGreaterThan(0);
    expect(Array.from(inputIds.data).every((id) => id >= 0 && id < config.vocabSize)).toBe(true);
    const logits = await reference.readFloat64('logits');
    expect([logits.dtype, logits.shape]).toEqual([valueDtype, [2, 11, config.vocabSize]]);
    const loss = await reference.readFloat64('loss');
    expect(loss.shape).toEqual([1]);
    const recomputed = causalLmLoss(logits.data, labels.data, 2, 11, config.vocabSize);
    expect(Math.abs(recomputed - loss.data[0]!)).toBeLessThan(
      (valueDtype === 'F64' ? 1e-10 : 1e-5) * Math.abs(recomputed),
    );

    // The generator's parameter order is transformers' named_parameters(): ours must be the same list.
    expect(JSON.parse(reference.metadata.parameter_order ?? '[]')).toEqual(params.map((p) => p.name));
    const gradNames = [...reference.tensors.keys()].filter((n) => n.startsWith('grad.')).sort();
    expect(gradNames).toEqual(params.map((p) => `grad.${p.name}`).sort());
    for (const p of params) {
      const info = reference.info(`grad.${p.name}`);
      expect([p.name, info.dtype, info.shape]).toEqual([p.name, valueDtype, p.shape]);
    }
  } finally {
    await reference.close();
  }
}

describe('HF fixtures: models', () => {
  for (const [name, expectations] of Object.entries(MODELS)) {
    it(`${name}: config.json, checkpoint and parameter list agree`, async () => {
      const dir = fixture(name);
      const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      const model = await openHfModel(dir);
      try {
        expectations(model.config, raw);
        if (typeof raw.head_dim === 'number') expect(model.config.headDim).toBe(raw.head_dim);
        for (const p of model.parameters) expect(model.weights.info(p.name).dtype).toBe('F32');
      } finally {
        await model.close();
      }
    });

    it(`${name}: reference.safetensors holds inputs, logits, loss and a gradient for every parameter`, async () => {
      await checkReference(name, await loadModelConfig(fixture(name)), 'F64');
    });

    it(`${name}-f16: f16 weights are torch's rounding of the f32 ones, and ours agrees`, async () => {
      const f32 = await openHfModel(fixture(name));
      const f16 = await openHfModel(fixture(`${name}-f16`));
      try {
        expect(f16.config).toEqual({ ...f32.config, savedDtype: f16.config.savedDtype });
        for (const p of f32.parameters) {
          expect(f16.weights.info(p.name).dtype).toBe('F16');
          const stored = await f16.weights.readFloat16(p.name);
          const ours = await f32.weights.readFloat16(p.name);
          expect(Array.from(stored.data), p.name).toEqual(Array.from(ours.data));
        }
        await checkReference(`${name}-f16`, f16.config, 'F32');
      } finally {
        await Promise.all([f32.close(), f16.close()]);
      }
    });
  }

  it('llama-tied is a sharded checkpoint written by transformers', async () => {
    const checkpoint = await CheckpointDir.open(fixture('llama-tied'));
    try {
      expect(existsSync(join(fixture('llama-tied'), 'model.safetensors.index.json'))).toBe(true);
      expect(checkpoint.files.length).toBeGreaterThan(1);
    } finally {
      await checkpoint.close();
    }
  });
});

interface ReferenceEncodings {
  encodings: { text: string; ids: number[]; ids_with_special: number[] }[];
  transformers: { ids?: number[][]; ids_with_special?: number[][]; error?: string };
}

describe('HF fixtures: tokenizers', () => {
  for (const name of ['llama-style', 'gpt2-style']) {
    it(`${name}: ids match the tokenizers library (and transformers where it loaded)`, async () => {
      const dir = fixture('tokenizers', name);
      const reference = JSON.parse(
        readFileSync(fixture('tokenizers', name, 'reference_encodings.json'), 'utf8'),
      ) as ReferenceEncodings;
      const tokenizer = await HfTokenizer.load(dir);
      expect(reference.encodings.length).toBeGreaterThan(5);
      for (const [i, e] of reference.encodings.entries()) {
        expect(tokenizer.encode(e.text, { addSpecialTokens: false }), JSON.stringify(e.text)).toEqual(e.ids);
        expect(tokenizer.encode(e.text, { addSpecialTokens: true }), JSON.stringify(e.text)).toEqual(
          e.ids_with_special,
        );
        if (reference.transformers.ids)
          expect(reference.transformers.ids[i], JSON.stringify(e.text)).toEqual(e.ids);
        if (reference.transformers.ids_with_special)
          expect(reference.transformers.ids_with_special[i], JSON.stringify(e.text)).toEqual(
            e.ids_with_special,
          );
      }
    });
  }
});
