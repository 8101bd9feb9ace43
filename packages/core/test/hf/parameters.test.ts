// The parameter list (HF names, shapes, roles) and checking checkpoints against it.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CheckpointMismatchError,
  listParameters,
  matchCheckpoint,
  openHfModel,
  parameterCount,
  parseModelConfig,
  writeCheckpointDir,
  type ModelConfig,
  type StoredTensor,
  type TensorToWrite,
} from '../../src/hf/index.js';
import { GPT2_SMALL, LLAMA2_7B, LLAMA_V5_STYLE, TINYLLAMA } from './configs.js';
import { tempDir } from './helpers.js';

describe('parameter list', () => {
  it('counts the published sizes of Llama-2-7B, TinyLlama-1.1B and GPT-2 small', () => {
    expect(parameterCount(parseModelConfig(LLAMA2_7B))).toBe(6_738_415_616);
    expect(parameterCount(parseModelConfig(TINYLLAMA))).toBe(1_100_048_384);
    expect(parameterCount(parseModelConfig(GPT2_SMALL))).toBe(124_439_808);
  });

  it('lists LLaMA linears out x in with GQA widths, in transformers order', () => {
    const params = listParameters(parseModelConfig(TINYLLAMA));
    expect(params.slice(0, 10).map((p) => [p.name, p.shape])).toEqual([
      ['model.embed_tokens.weight', [32000, 2048]],
      ['model.layers.0.self_attn.q_proj.weight', [2048, 2048]],
      ['model.layers.0.self_attn.k_proj.weight', [256, 2048]],
      ['model.layers.0.self_attn.v_proj.weight', [256, 2048]],
      ['model.layers.0.self_attn.o_proj.weight', [2048, 2048]],
      ['model.layers.0.mlp.gate_proj.weight', [5632, 2048]],
      ['model.layers.0.mlp.up_proj.weight', [5632, 2048]],
      ['model.layers.0.mlp.down_proj.weight', [2048, 5632]],
      ['model.layers.0.input_layernorm.weight', [2048]],
      ['model.layers.0.post_attention_layernorm.weight', [2048]],
    ]);
    expect(params.at(-2)?.name).toBe('model.norm.weight');
    expect(params.at(-1)).toEqual({
      name: 'lm_head.weight',
      shape: [32000, 2048],
      role: 'lm_head',
      layer: null,
    });
    const k3 = params.find((p) => p.name === 'model.layers.3.self_attn.k_proj.weight');
    expect(k3).toEqual({
      name: 'model.layers.3.self_attn.k_proj.weight',
      shape: [256, 2048],
      role: 'linear',
      layer: 3,
      linearType: 'k_proj',
      inFeatures: 2048,
      outFeatures: 256,
      layout: 'out_in',
    });
    expect(params.filter((p) => p.role === 'linear')).toHaveLength(22 * 7);
  });

  it('adds LLaMA biases when asked, uses head_dim, and drops lm_head when tied', () => {
    const params = listParameters(parseModelConfig(LLAMA_V5_STYLE));
    const names = params.map((p) => p.name);
    expect(names).not.toContain('lm_head.weight');
    const byName = new Map(params.map((p) => [p.name, p]));
    expect(byName.get('model.layers.1.self_attn.q_proj.weight')?.shape).toEqual([48, 36]);
    expect(byName.get('model.layers.1.self_attn.o_proj.weight')?.shape).toEqual([36, 48]);
    expect(byName.get('model.layers.1.self_attn.v_proj.bias')).toEqual({
      name: 'model.layers.1.self_attn.v_proj.bias',
      shape: [16],
      role: 'bias',
      layer: 1,
      module: 'v_proj',
    });
    expect(byName.get('model.layers.0.mlp.down_proj.bias')?.shape).toEqual([36]);
    expect(names.indexOf('model.layers.0.self_attn.q_proj.bias')).toBe(
      names.indexOf('model.layers.0.self_attn.q_proj.weight') + 1,
    );
  });

  it('lists GPT-2 Conv1D weights in x out, LayerNorm biases, learned positions, tied head', () => {
    const params = listParameters(parseModelConfig(GPT2_SMALL));
    expect(params.slice(0, 8).map((p) => [p.name, p.shape, p.role])).toEqual([
      ['transformer.wte.weight', [50257, 768], 'embedding'],
      ['transformer.wpe.weight', [1024, 768], 'embedding'],
      ['transformer.h.0.ln_1.weight', [768], 'norm'],
      ['transformer.h.0.ln_1.bias', [768], 'bias'],
      ['transformer.h.0.attn.c_attn.weight', [768, 2304], 'linear'],
      ['transformer.h.0.attn.c_attn.bias', [2304], 'bias'],
      ['transformer.h.0.attn.c_proj.weight', [768, 768], 'linear'],
      ['transformer.h.0.attn.c_proj.bias', [768], 'bias'],
    ]);
    const fc = params.find((p) => p.name === 'transformer.h.11.mlp.c_fc.weight');
    expect(fc).toMatchObject({
      role: 'linear',
      layer: 11,
      linearType: 'mlp.c_fc',
      inFeatures: 768,
      outFeatures: 3072,
      layout: 'in_out',
      shape: [768, 3072],
    });
    expect(params.find((p) => p.name === 'transformer.h.11.mlp.c_proj.weight')?.shape).toEqual([3072, 768]);
    expect(params.slice(-2).map((p) => p.name)).toEqual(['transformer.ln_f.weight', 'transformer.ln_f.bias']);
  });
});

/** What a checkpoint would store for `config`, shapes only. */
function storedFor(config: ModelConfig): Map<string, StoredTensor> {
  return new Map(listParameters(config).map((p) => [p.name, { shape: p.shape, dtype: 'F32' as const }]));
}

describe('matching a checkpoint to config.json', () => {
  const gqa = parseModelConfig({ ...TINYLLAMA, num_hidden_layers: 2 });
  const gpt2 = parseModelConfig({ ...GPT2_SMALL, n_layer: 2 });

  it('accepts an exact checkpoint', () => {
    const names = matchCheckpoint(gqa, listParameters(gqa), storedFor(gqa), 'ckpt');
    expect(names.get('model.layers.1.mlp.up_proj.weight')).toBe('model.layers.1.mlp.up_proj.weight');
  });

  it('names a shape mismatch with both shapes', () => {
    const stored = storedFor(gqa);
    stored.set('model.layers.1.self_attn.k_proj.weight', { shape: [2048, 2048], dtype: 'F32' });
    expect(() => matchCheckpoint(gqa, listParameters(gqa), stored, '/ckpt')).toThrow(
      '/ckpt: checkpoint does not match config.json: tensor "model.layers.1.self_attn.k_proj.weight": shape mismatch: [2048, 2048] in the checkpoint, [256, 2048] from config.json',
    );
  });

  it('lists missing and unexpected tensors together', () => {
    const stored = storedFor(gqa);
    stored.delete('model.norm.weight');
    stored.delete('lm_head.weight');
    stored.set('model.layers.2.mlp.up_proj.weight', { shape: [5632, 2048], dtype: 'F32' });
    stored.set('model.layers.0.self_attn.q_proj.weight', { shape: [2048, 2048], dtype: 'I32' });
    let error: CheckpointMismatchError | undefined;
    try {
      matchCheckpoint(gqa, listParameters(gqa), stored, 'ckpt');
    } catch (e) {
      error = e as CheckpointMismatchError;
    }
    expect(error).toBeInstanceOf(CheckpointMismatchError);
    expect(error?.problems).toEqual([
      { tensor: 'model.layers.0.self_attn.q_proj.weight', problem: 'dtype I32 is not a float type' },
      { tensor: 'model.norm.weight', problem: 'missing (config.json implies shape [2048])' },
      { tensor: 'lm_head.weight', problem: 'missing (config.json implies shape [32000, 2048])' },
      {
        tensor: 'model.layers.2.mlp.up_proj.weight',
        problem: 'unexpected: no parameter of this LlamaForCausalLM has this name',
      },
    ]);
  });

  it('accepts known harmless extras: GPT-2 mask buffers, rotary inv_freq, a tied lm_head', () => {
    const stored = storedFor(gpt2);
    stored.set('transformer.h.0.attn.bias', { shape: [1, 1, 1024, 1024], dtype: 'BOOL' });
    stored.set('transformer.h.1.attn.masked_bias', { shape: [], dtype: 'F32' });
    stored.set('lm_head.weight', { shape: [50257, 768], dtype: 'F32' });
    expect(() => matchCheckpoint(gpt2, listParameters(gpt2), stored, 'ckpt')).not.toThrow();
    const llama = storedFor(gqa);
    llama.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [32], dtype: 'F32' });
    expect(() => matchCheckpoint(gqa, listParameters(gqa), llama, 'ckpt')).not.toThrow();
  });

  it('maps GPT-2 checkpoints saved without the transformer. prefix', () => {
    const stored = new Map([...storedFor(gpt2)].map(([name, t]) => [name.replace(/^transformer\./, ''), t]));
    stored.set('h.0.attn.bias', { shape: [1, 1, 1024, 1024], dtype: 'F32' });
    const names = matchCheckpoint(gpt2, listParameters(gpt2), stored, 'ckpt');
    expect(names.get('transformer.h.1.mlp.c_fc.weight')).toBe('h.1.mlp.c_fc.weight');
  });
});

describe('openHfModel', () => {
  const tiny = { ...LLAMA_V5_STYLE };

  async function modelDir(edit: (tensors: TensorToWrite[]) => TensorToWrite[] = (t) => t): Promise<string> {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.json'), JSON.stringify(tiny));
    const tensors = listParameters(parseModelConfig(tiny)).map((p, i) => ({
      name: p.name,
      dtype: 'F32' as const,
      shape: p.shape,
      data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)).fill(i),
    }));
    await writeCheckpointDir(dir, edit(tensors), { maxShardBytes: 20_000 });
    return dir;
  }

  it('opens config, parameters and sharded weights by HF name', async () => {
    const model = await openHfModel(await modelDir());
    try {
      expect(model.config.hiddenSize).toBe(36);
      const i = model.parameters.findIndex((p) => p.name === 'model.layers.1.mlp.gate_proj.weight');
      const w = await model.weights.readFloat16('model.layers.1.mlp.gate_proj.weight');
      expect(w.shape).toEqual([60, 36]);
      expect((await model.weights.readFloat32('model.layers.1.mlp.gate_proj.weight')).data[0]).toBe(i);
    } finally {
      await model.close();
    }
  });

  it('refuses a checkpoint whose shapes do not match config.json', async () => {
    const dir = await modelDir((tensors) =>
      tensors.map((t) =>
        t.name === 'model.layers.0.self_attn.k_proj.weight'
          ? { ...t, shape: [8, 36], data: new Float32Array(288) }
          : t,
      ),
    );
    await expect(openHfModel(dir)).rejects.toThrow(
      /tensor "model.layers.0.self_attn.k_proj.weight": shape mismatch: \[8, 36\] in the checkpoint, \[16, 36\] from config.json/,
    );
  });
});
