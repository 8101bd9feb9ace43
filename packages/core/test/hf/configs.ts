// config.json contents as transformers writes them, for tests (sizes of real published models).
export const LLAMA2_7B = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  hidden_act: 'silu',
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  rope_scaling: null,
  tie_word_embeddings: false,
  attention_bias: false,
  mlp_bias: false,
  pretraining_tp: 1,
  bos_token_id: 1,
  eos_token_id: 2,
  torch_dtype: 'float16',
};

/** TinyLlama-1.1B: grouped-query attention with 4 key/value heads for 32 query heads. */
export const TINYLLAMA = {
  ...LLAMA2_7B,
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  max_position_embeddings: 2048,
  torch_dtype: 'bfloat16',
};

/** transformers 5 style: rope in rope_parameters, no top-level rope_theta. */
export const LLAMA_V5_STYLE = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 97,
  hidden_size: 36,
  intermediate_size: 60,
  num_hidden_layers: 2,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  head_dim: 8,
  rms_norm_eps: 1e-6,
  rope_parameters: { rope_type: 'default', rope_theta: 50000.0 },
  tie_word_embeddings: true,
  attention_bias: true,
  mlp_bias: true,
  eos_token_id: [2, 3],
  dtype: 'float32',
};

export const GPT2_SMALL = {
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  activation_function: 'gelu_new',
  vocab_size: 50257,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_positions: 1024,
  n_ctx: 1024,
  n_inner: null,
  layer_norm_epsilon: 1e-5,
  bos_token_id: 50256,
  eos_token_id: 50256,
  attn_pdrop: 0.1,
  embd_pdrop: 0.1,
  resid_pdrop: 0.1,
  scale_attn_weights: true,
};
