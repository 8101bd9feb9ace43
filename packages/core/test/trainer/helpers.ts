// Shared by the trainer tests.
import { parseModelConfig, type ModelConfig } from '../../src/index.js';

/**
 * The trainer tests' small LLaMA (vocabulary 41, hidden 24, MLP 40, 2 layers, 4 query and 2 KV heads,
 * 32 positions, untied head), with `overrides` in config.json's names.
 */
export function tinyLlama(overrides: Record<string, unknown> = {}): ModelConfig {
  return parseModelConfig({
    model_type: 'llama',
    vocab_size: 41,
    hidden_size: 24,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 32,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    ...overrides,
  });
}

/** The largest difference between two sets of weights, relative to each tensor's largest |value|. */
export function maxRelDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    let scale = 1e-6;
    for (const v of y) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / scale);
  }
  return worst;
}
