// config.json of GPT2LMHeadModel -> ModelConfig. GPT-2 always has biases, LayerNorm, learned
// positions and (unless the config says otherwise) an lm_head tied to the token embedding.
import { checkArchitecture, savedDtypeOf, type ConfigFields } from './config-fields.js';
import type { ModelConfig } from './model-config.js';

/** Both names denote the tanh approximation of GELU that GPT-2 was trained with. */
const GELU_TANH_NAMES = ['gelu_new', 'gelu_pytorch_tanh'];

export function parseGpt2Config(fields: ConfigFields): ModelConfig {
  checkArchitecture(fields, 'GPT2LMHeadModel');
  const hiddenSize = fields.positiveInt('n_embd');
  const numHeads = fields.positiveInt('n_head');
  if (hiddenSize % numHeads !== 0)
    throw fields.error(`n_embd (${hiddenSize}) is not a multiple of n_head (${numHeads})`);
  const activation = fields.string('activation_function', 'gelu_new');
  if (!GELU_TANH_NAMES.includes(activation))
    throw fields.error(`activation_function "${activation}" is not supported for gpt2 (only "gelu_new")`);
  // Variants that change the attention math: refuse rather than compute something else.
  if (fields.boolean('scale_attn_by_inverse_layer_idx', false))
    throw fields.error('scale_attn_by_inverse_layer_idx is not supported');
  if (!fields.boolean('scale_attn_weights', true))
    throw fields.error('scale_attn_weights false is not supported');
  if (fields.boolean('add_cross_attention', false))
    throw fields.error('add_cross_attention is not supported');
  return {
    family: 'gpt2',
    architecture: 'GPT2LMHeadModel',
    vocabSize: fields.positiveInt('vocab_size'),
    hiddenSize,
    numLayers: fields.positiveInt('n_layer'),
    numHeads,
    numKeyValueHeads: numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: fields.has('n_inner') ? fields.positiveInt('n_inner') : 4 * hiddenSize,
    maxPositions: fields.positiveInt('n_positions', 1024),
    norm: { kind: 'layernorm', eps: fields.positiveNumber('layer_norm_epsilon', 1e-5) },
    activation: 'gelu_new',
    positions: { kind: 'learned' },
    tieWordEmbeddings: fields.boolean('tie_word_embeddings', true),
    attentionBias: true,
    mlpBias: true,
    bosTokenIds: fields.tokenIds('bos_token_id'),
    eosTokenIds: fields.tokenIds('eos_token_id'),
    ...savedDtypeOf(fields),
  };
}
