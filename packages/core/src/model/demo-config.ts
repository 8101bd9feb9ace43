// The built-in model of the demo fine-tune: a tiny LLaMA (grouped-query attention, RoPE, SwiGLU) sized
// so the demo task (packages/core/src/data/demo-task.ts, 14 token ids) trains in about a minute on a
// CPU-only machine running WebGPU through lavapipe.
import { parseModelConfig, type ModelConfig } from '../hf/index.js';

export const DEMO_MODEL_JSON = {
  model_type: 'llama',
  architectures: ['LlamaForCausalLM'],
  vocab_size: 16,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 128,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  bos_token_id: 1,
  eos_token_id: 3,
} as const;

export const DEMO_MODEL_CONFIG: ModelConfig = parseModelConfig(DEMO_MODEL_JSON, 'the built-in demo model');
