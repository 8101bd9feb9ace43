// config.json for a saved model: the model's original config.json when the run started from a Hugging Face
// directory (keeping the fields lsp-offload does not use, e.g. pad_token_id), or one rendered from the
// ModelConfig (random-init and demo models), with the dtype field set to what the weights are saved in.
// Either way it is checked to describe exactly the parameters being written, so the directory loads.
import { listParameters, parseModelConfig, type ModelConfig, type ParameterSpec } from '../hf/index.js';
import { isPlainObject } from '../hf/safetensors-header.js';
import { CheckpointError } from './errors.js';

export type JsonObject = Record<string, unknown>;

/** The dtypes a model can be saved in, and their torch names for config.json. */
export type SavedWeightDtype = 'f32' | 'f16' | 'bf16';
export const TORCH_DTYPE_NAMES: Readonly<Record<SavedWeightDtype, string>> = {
  f32: 'float32',
  f16: 'float16',
  bf16: 'bfloat16',
};

/** config.json fields that transformers (LlamaForCausalLM / GPT2LMHeadModel) reads back as `config`. */
export function renderConfigJson(config: ModelConfig): JsonObject {
  const tokens = {
    ...tokenIdField('bos_token_id', config.bosTokenIds),
    ...tokenIdField('eos_token_id', config.eosTokenIds),
  };
  if (config.family === 'llama') {
    if (config.positions.kind !== 'rope') throw new Error('a llama config must use RoPE');
    return {
      architectures: [config.architecture],
      model_type: 'llama',
      vocab_size: config.vocabSize,
      hidden_size: config.hiddenSize,
      intermediate_size: config.intermediateSize,
      num_hidden_layers: config.numLayers,
      num_attention_heads: config.numHeads,
      num_key_value_heads: config.numKeyValueHeads,
      head_dim: config.headDim,
      max_position_embeddings: config.maxPositions,
      rms_norm_eps: config.norm.eps,
      rope_theta: config.positions.theta,
      rope_scaling: null,
      hidden_act: 'silu',
      tie_word_embeddings: config.tieWordEmbeddings,
      attention_bias: config.attentionBias,
      mlp_bias: config.mlpBias,
      ...tokens,
    };
  }
  return {
    architectures: [config.architecture],
    model_type: 'gpt2',
    vocab_size: config.vocabSize,
    n_embd: config.hiddenSize,
    n_layer: config.numLayers,
    n_head: config.numHeads,
    // transformers writes null for the default 4 x n_embd
    n_inner: config.intermediateSize === 4 * config.hiddenSize ? null : config.intermediateSize,
    n_positions: config.maxPositions,
    layer_norm_epsilon: config.norm.eps,
    activation_function: 'gelu_new',
    tie_word_embeddings: config.tieWordEmbeddings,
    ...tokens,
  };
}

/**
 * The config.json to write beside weights of `specs` saved as `dtype`: `source` (an original config.json)
 * or one rendered from `config`. Throws when `source` implies other parameters than `specs`.
 */
export function configJsonFor(
  config: ModelConfig,
  specs: readonly ParameterSpec[],
  dtype: SavedWeightDtype,
  source?: unknown,
): JsonObject {
  let json: JsonObject;
  if (source === undefined) json = renderConfigJson(config);
  else if (isPlainObject(source)) json = { ...source };
  else throw new CheckpointError('config.json', 'the given config.json is not a JSON object');
  const problems = parameterDifferences(listParameters(parseModelConfig(json)), specs);
  if (problems.length > 0)
    throw new CheckpointError(
      'config.json',
      `does not describe the model being saved: ${problems.slice(0, 6).join('; ')}`,
    );
  // transformers >= 4.56 writes `dtype`, older ones `torch_dtype`: update what the file has.
  const keys = ['dtype', 'torch_dtype'].filter((k) => Object.hasOwn(json, k));
  for (const key of keys.length > 0 ? keys : ['dtype']) json[key] = TORCH_DTYPE_NAMES[dtype];
  return json;
}

/** Every parameter missing, extra or shaped differently in `actual` compared with `expected`. */
export function parameterDifferences(
  expected: readonly ParameterSpec[],
  actual: readonly ParameterSpec[],
): string[] {
  const problems: string[] = [];
  const actualByName = new Map(actual.map((s) => [s.name, s]));
  for (const e of expected) {
    const a = actualByName.get(e.name);
    if (!a) problems.push(`'${e.name}' [${e.shape.join(', ')}] is missing`);
    else if (a.shape.join() !== e.shape.join())
      problems.push(`'${e.name}' is [${a.shape.join(', ')}], expected [${e.shape.join(', ')}]`);
    actualByName.delete(e.name);
  }
  for (const name of actualByName.keys()) problems.push(`'${name}' is not expected`);
  return problems;
}

function tokenIdField(key: string, ids: readonly number[]): JsonObject {
  if (ids.length === 0) return {};
  return { [key]: ids.length === 1 ? ids[0] : [...ids] };
}
