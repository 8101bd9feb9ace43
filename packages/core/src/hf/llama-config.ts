// config.json of LlamaForCausalLM -> ModelConfig. Fields absent from the file take transformers'
// defaults, except the sizes, whose defaults (LLaMA-7B's) would silently build the wrong model.
import { checkArchitecture, savedDtypeOf, type ConfigFields, type JsonObject } from './config-fields.js';
import { isPlainObject } from './safetensors-header.js';
import type { ModelConfig } from './model-config.js';

const DEFAULT_ROPE_THETA = 10000;

export function parseLlamaConfig(fields: ConfigFields): ModelConfig {
  checkArchitecture(fields, 'LlamaForCausalLM');
  const hiddenSize = fields.positiveInt('hidden_size');
  const numHeads = fields.positiveInt('num_attention_heads');
  const numKeyValueHeads = fields.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKeyValueHeads !== 0)
    throw fields.error(
      `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`,
    );
  if (!fields.has('head_dim') && hiddenSize % numHeads !== 0)
    throw fields.error(
      `hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and no head_dim is given`,
    );
  const headDim = fields.has('head_dim') ? fields.positiveInt('head_dim') : hiddenSize / numHeads;
  const activation = fields.string('hidden_act', 'silu');
  if (activation !== 'silu')
    throw fields.error(`hidden_act "${activation}" is not supported for llama (only "silu")`);
  return {
    family: 'llama',
    architecture: 'LlamaForCausalLM',
    vocabSize: fields.positiveInt('vocab_size'),
    hiddenSize,
    numLayers: fields.positiveInt('num_hidden_layers'),
    numHeads,
    numKeyValueHeads,
    headDim,
    intermediateSize: fields.positiveInt('intermediate_size'),
    maxPositions: fields.positiveInt('max_position_embeddings', 2048),
    norm: { kind: 'rmsnorm', eps: fields.positiveNumber('rms_norm_eps', 1e-6) },
    activation: 'silu',
    positions: { kind: 'rope', theta: ropeTheta(fields) },
    tieWordEmbeddings: fields.boolean('tie_word_embeddings', false),
    attentionBias: fields.boolean('attention_bias', false),
    mlpBias: fields.boolean('mlp_bias', false),
    bosTokenIds: fields.tokenIds('bos_token_id'),
    eosTokenIds: fields.tokenIds('eos_token_id'),
    ...savedDtypeOf(fields),
  };
}

/**
 * transformers <= 4.x keeps `rope_theta` at the top level and scaling in `rope_scaling`; 5.x moves
 * both into `rope_parameters` (`{rope_type, rope_theta, ...}`). Only unscaled RoPE is implemented:
 * any other rope type is refused rather than silently computed wrong.
 */
function ropeTheta(fields: ConfigFields): number {
  const parameters = ropeObject(fields, 'rope_parameters');
  const scaling = ropeObject(fields, 'rope_scaling');
  for (const [key, value] of [
    ['rope_parameters', parameters],
    ['rope_scaling', scaling],
  ] as const) {
    if (!value) continue;
    const type = value.rope_type ?? value.type ?? 'default';
    if (type !== 'default')
      throw fields.error(
        `${key} type ${JSON.stringify(type)} is not supported: only unscaled RoPE (rope type "default", or rope_scaling null) is implemented, not linear/dynamic/yarn/longrope/llama3 scaling`,
      );
    const factor = value.partial_rotary_factor;
    if (factor !== undefined && factor !== null && factor !== 1)
      throw fields.error(`${key}.partial_rotary_factor ${JSON.stringify(factor)} is not supported (only 1)`);
  }
  const topFactor = fields.json.partial_rotary_factor;
  if (topFactor !== undefined && topFactor !== null && topFactor !== 1)
    throw fields.error(`partial_rotary_factor ${JSON.stringify(topFactor)} is not supported (only 1)`);
  const theta = parameters?.rope_theta ?? fields.json.rope_theta ?? DEFAULT_ROPE_THETA;
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0)
    throw fields.error(`rope_theta must be a positive number, got ${JSON.stringify(theta)}`);
  return theta;
}

function ropeObject(fields: ConfigFields, key: string): JsonObject | undefined {
  const value = fields.json[key];
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value))
    throw fields.error(`"${key}" must be an object or null, got ${JSON.stringify(value)}`);
  return value;
}
