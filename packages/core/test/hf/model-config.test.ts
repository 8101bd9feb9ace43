// config.json -> ModelConfig for LLaMA and GPT-2, and the errors for what is not supported.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HfFormatError, loadModelConfig, parseModelConfig } from '../../src/hf/index.js';
import { GPT2_SMALL, LLAMA2_7B, LLAMA_V5_STYLE, TINYLLAMA } from './configs.js';
import { tempDir } from './helpers.js';

describe('LLaMA config.json', () => {
  it('normalizes Llama-2-7B', () => {
    expect(parseModelConfig(LLAMA2_7B)).toEqual({
      family: 'llama',
      architecture: 'LlamaForCausalLM',
      vocabSize: 32000,
      hiddenSize: 4096,
      numLayers: 32,
      numHeads: 32,
      numKeyValueHeads: 32,
      headDim: 128,
      intermediateSize: 11008,
      maxPositions: 4096,
      norm: { kind: 'rmsnorm', eps: 1e-5 },
      activation: 'silu',
      positions: { kind: 'rope', theta: 10000 },
      tieWordEmbeddings: false,
      attentionBias: false,
      mlpBias: false,
      bosTokenIds: [1],
      eosTokenIds: [2],
      savedDtype: 'float16',
    });
  });

  it('reads grouped-query attention', () => {
    const c = parseModelConfig(TINYLLAMA);
    expect([c.numHeads, c.numKeyValueHeads, c.headDim]).toEqual([32, 4, 64]);
  });

  it('reads transformers 5 rope_parameters, explicit head_dim, ties, biases and a list of eos ids', () => {
    const c = parseModelConfig(LLAMA_V5_STYLE);
    expect(c.positions).toEqual({ kind: 'rope', theta: 50000 });
    expect(c.headDim).toBe(8);
    expect(c.numHeads * c.headDim).not.toBe(c.hiddenSize);
    expect([c.tieWordEmbeddings, c.attentionBias, c.mlpBias]).toEqual([true, true, true]);
    expect(c.eosTokenIds).toEqual([2, 3]);
    expect(c.bosTokenIds).toEqual([]);
    expect(c.savedDtype).toBe('float32');
  });

  it('takes transformers defaults for optional fields', () => {
    const { vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads } = LLAMA2_7B;
    const c = parseModelConfig({
      model_type: 'llama',
      vocab_size,
      hidden_size,
      intermediate_size,
      num_hidden_layers,
      num_attention_heads,
    });
    expect(c.numKeyValueHeads).toBe(32);
    expect(c.positions).toEqual({ kind: 'rope', theta: 10000 });
    expect(c.norm.eps).toBe(1e-6);
    expect(c.maxPositions).toBe(2048);
    expect(c.tieWordEmbeddings).toBe(false);
    expect(c.savedDtype).toBeUndefined();
  });

  it('accepts rope_scaling of type default', () => {
    expect(parseModelConfig({ ...LLAMA2_7B, rope_scaling: { type: 'default' } }).positions).toEqual({
      kind: 'rope',
      theta: 10000,
    });
  });

  for (const type of ['linear', 'dynamic', 'yarn', 'llama3', 'longrope']) {
    it(`refuses rope scaling "${type}", naming it`, () => {
      const scaling = { rope_type: type, factor: 8.0 };
      expect(() => parseModelConfig({ ...LLAMA2_7B, rope_scaling: scaling })).toThrow(
        new RegExp(`rope_scaling type "${type}" is not supported: only unscaled RoPE`),
      );
      expect(() =>
        parseModelConfig({ ...LLAMA_V5_STYLE, rope_parameters: { ...scaling, rope_theta: 5e5 } }),
      ).toThrow(new RegExp(`rope_parameters type "${type}" is not supported`));
    });
  }

  it('refuses the legacy "type" spelling of scaling too', () => {
    expect(() => parseModelConfig({ ...LLAMA2_7B, rope_scaling: { type: 'linear', factor: 2 } })).toThrow(
      /"linear" is not supported/,
    );
  });

  it('refuses partial rotary embeddings', () => {
    expect(() => parseModelConfig({ ...LLAMA2_7B, partial_rotary_factor: 0.5 })).toThrow(
      /partial_rotary_factor 0.5 is not supported/,
    );
  });

  it('explains inconsistent or missing sizes', () => {
    expect(() => parseModelConfig({ ...TINYLLAMA, num_key_value_heads: 5 })).toThrow(
      /num_attention_heads \(32\) must be a multiple of num_key_value_heads \(5\)/,
    );
    expect(() => parseModelConfig({ ...LLAMA2_7B, hidden_size: 4100 })).toThrow(
      /hidden_size \(4100\) is not a multiple of num_attention_heads \(32\)/,
    );
    const { hidden_size: _, ...noHidden } = LLAMA2_7B;
    expect(() => parseModelConfig(noHidden, '/m/config.json')).toThrow(
      /^\/m\/config.json: "hidden_size" must be a positive integer, got undefined/,
    );
    expect(() => parseModelConfig({ ...LLAMA2_7B, vocab_size: 3.5 })).toThrow(
      /"vocab_size" must be a positive integer, got 3.5/,
    );
    expect(() => parseModelConfig({ ...LLAMA2_7B, tie_word_embeddings: 'yes' })).toThrow(
      /"tie_word_embeddings" must be true or false/,
    );
  });

  it('refuses another activation or head', () => {
    expect(() => parseModelConfig({ ...LLAMA2_7B, hidden_act: 'gelu' })).toThrow(
      /hidden_act "gelu" is not supported for llama \(only "silu"\)/,
    );
    expect(() =>
      parseModelConfig({ ...LLAMA2_7B, architectures: ['LlamaForSequenceClassification'] }),
    ).toThrow(/does not include LlamaForCausalLM/);
  });
});

describe('GPT-2 config.json', () => {
  it('normalizes GPT-2 small', () => {
    expect(parseModelConfig(GPT2_SMALL)).toEqual({
      family: 'gpt2',
      architecture: 'GPT2LMHeadModel',
      vocabSize: 50257,
      hiddenSize: 768,
      numLayers: 12,
      numHeads: 12,
      numKeyValueHeads: 12,
      headDim: 64,
      intermediateSize: 3072,
      maxPositions: 1024,
      norm: { kind: 'layernorm', eps: 1e-5 },
      activation: 'gelu_new',
      positions: { kind: 'learned' },
      tieWordEmbeddings: true,
      attentionBias: true,
      mlpBias: true,
      bosTokenIds: [50256],
      eosTokenIds: [50256],
    });
  });

  it('reads n_inner and an untied head', () => {
    const c = parseModelConfig({ ...GPT2_SMALL, n_inner: 1000, tie_word_embeddings: false });
    expect([c.intermediateSize, c.tieWordEmbeddings]).toEqual([1000, false]);
  });

  it('refuses variants that change the math', () => {
    expect(() => parseModelConfig({ ...GPT2_SMALL, activation_function: 'relu' })).toThrow(
      /activation_function "relu" is not supported for gpt2/,
    );
    expect(() => parseModelConfig({ ...GPT2_SMALL, scale_attn_by_inverse_layer_idx: true })).toThrow(
      /scale_attn_by_inverse_layer_idx/,
    );
    expect(() => parseModelConfig({ ...GPT2_SMALL, n_head: 7 })).toThrow(
      /n_embd \(768\) is not a multiple of n_head \(7\)/,
    );
  });
});

describe('unsupported models', () => {
  it('names the model_type and what is supported', () => {
    const e = (() => {
      try {
        parseModelConfig({ ...LLAMA2_7B, model_type: 'mistral' }, 'config.json');
      } catch (error) {
        return error;
      }
    })();
    expect(e).toBeInstanceOf(HfFormatError);
    expect((e as Error).message).toBe(
      'config.json: unsupported model_type "mistral": supported are "llama" and "gpt2" (LlamaForCausalLM, GPT2LMHeadModel)',
    );
    expect(() => parseModelConfig({})).toThrow(/unsupported model_type null/);
    expect(() => parseModelConfig([])).toThrow(/not a JSON object/);
  });
});

describe('loadModelConfig', () => {
  it('reads <dir>/config.json and names it in errors', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.json'), JSON.stringify(GPT2_SMALL));
    expect((await loadModelConfig(dir)).hiddenSize).toBe(768);
    writeFileSync(join(dir, 'config.json'), '{"model_type": ');
    await expect(loadModelConfig(dir)).rejects.toThrow(/config.json: not valid JSON/);
    await expect(loadModelConfig(join(dir, 'nope'))).rejects.toThrow(/nope\/config.json: cannot read/);
  });
});
