// Model shapes for benchmarks (random initialisation; no download). Shapes follow the public configs.
import { parseModelConfig, type ModelConfig } from '../hf/index.js';
import { DEMO_MODEL_JSON } from '../model/demo-config.js';

const llama = (o: Record<string, unknown>): Record<string, unknown> => ({
  model_type: 'llama',
  hidden_act: 'silu',
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  max_position_embeddings: 4096,
  ...o,
});

export const MODEL_PRESETS: Record<string, { description: string; json: Record<string, unknown> }> = {
  demo: { description: 'the built-in demo model (tiny LLaMA)', json: { ...DEMO_MODEL_JSON } },
  'llama-tiny': {
    description: 'a 4-layer LLaMA of hidden 256 (CPU-adapter smoke runs)',
    json: llama({
      vocab_size: 1000,
      hidden_size: 256,
      intermediate_size: 688,
      num_hidden_layers: 4,
      num_attention_heads: 8,
      num_key_value_heads: 4,
    }),
  },
  'deepseek-coder-1.3b': {
    description: "DeepSeek-Coder-1.3B shape (the authors' 1.3B benchmark model): 24 layers, hidden 2048",
    json: llama({
      vocab_size: 32256,
      hidden_size: 2048,
      intermediate_size: 5504,
      num_hidden_layers: 24,
      num_attention_heads: 16,
      num_key_value_heads: 16,
      rope_theta: 100000,
    }),
  },
  'tinyllama-1.1b': {
    description: 'TinyLlama-1.1B shape: 22 layers, hidden 2048, grouped-query attention (4 KV heads)',
    json: llama({
      vocab_size: 32000,
      hidden_size: 2048,
      intermediate_size: 5632,
      num_hidden_layers: 22,
      num_attention_heads: 32,
      num_key_value_heads: 4,
    }),
  },
  'deepseek-coder-6.7b': {
    description: 'DeepSeek-Coder-6.7B shape: 32 layers, hidden 4096',
    json: llama({
      vocab_size: 32256,
      hidden_size: 4096,
      intermediate_size: 11008,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      rope_theta: 100000,
    }),
  },
};

export function presetConfig(name: string): ModelConfig {
  const p = MODEL_PRESETS[name];
  if (!p)
    throw new Error(`unknown model preset '${name}': known are ${Object.keys(MODEL_PRESETS).join(', ')}`);
  return parseModelConfig(p.json, `preset ${name}`);
}
