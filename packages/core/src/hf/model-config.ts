// The model configuration every part of lsp-offload uses, normalized from a Hugging Face config.json.
// Supported: LlamaForCausalLM (model_type "llama") and GPT2LMHeadModel (model_type "gpt2").
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigFields } from './config-fields.js';
import { HfFormatError } from './errors.js';
import { isPlainObject } from './safetensors-header.js';
import { parseGpt2Config } from './gpt2-config.js';
import { parseLlamaConfig } from './llama-config.js';

export type ModelFamily = 'llama' | 'gpt2';

export interface ModelConfig {
  readonly family: ModelFamily;
  /** The HF class the checkpoint is for. */
  readonly architecture: 'LlamaForCausalLM' | 'GPT2LMHeadModel';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Grouped-query attention: heads share key/value heads in groups of numHeads / numKeyValueHeads. */
  readonly numKeyValueHeads: number;
  /** Per head; numHeads * headDim may differ from hiddenSize (LLaMA's explicit head_dim). */
  readonly headDim: number;
  /** Width of the MLP's hidden layer. */
  readonly intermediateSize: number;
  readonly maxPositions: number;
  /** LLaMA: RMSNorm (weight only); GPT-2: LayerNorm (weight and bias). */
  readonly norm: { readonly kind: 'rmsnorm' | 'layernorm'; readonly eps: number };
  /** LLaMA: silu in a gated MLP (gate, up, down); GPT-2: gelu_new (tanh approximation), plain MLP. */
  readonly activation: 'silu' | 'gelu_new';
  readonly positions: { readonly kind: 'rope'; readonly theta: number } | { readonly kind: 'learned' };
  /** lm_head shares the token embedding (no separate lm_head.weight). */
  readonly tieWordEmbeddings: boolean;
  /** Biases on q, k, v and the attention output projection. */
  readonly attentionBias: boolean;
  /** Biases on the MLP's linears. */
  readonly mlpBias: boolean;
  readonly bosTokenIds: readonly number[];
  readonly eosTokenIds: readonly number[];
  /** The dtype the weights were saved in (config's torch_dtype / dtype), if stated. */
  readonly savedDtype?: string;
}

export const SUPPORTED_MODEL_TYPES: readonly string[] = ['llama', 'gpt2'];

/** Normalizes a parsed config.json; `source` names the file in errors. */
export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (!isPlainObject(json)) throw new HfFormatError(source, 'not a JSON object');
  const fields = new ConfigFields(source, json);
  const modelType = json.model_type;
  switch (modelType) {
    case 'llama':
      return parseLlamaConfig(fields);
    case 'gpt2':
      return parseGpt2Config(fields);
    default:
      throw new HfFormatError(
        source,
        `unsupported model_type ${JSON.stringify(modelType ?? null)}: supported are ${SUPPORTED_MODEL_TYPES.map((t) => `"${t}"`).join(' and ')} (LlamaForCausalLM, GPT2LMHeadModel)`,
      );
  }
}

/** Reads and normalizes `<dir>/config.json`. */
export async function loadModelConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new HfFormatError(path, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new HfFormatError(path, `not valid JSON (${(e as Error).message})`);
  }
  return parseModelConfig(json, path);
}
