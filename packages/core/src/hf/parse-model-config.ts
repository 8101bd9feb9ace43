// Reading config.json into a ModelConfig: the model type picks the architecture's parser.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigFields } from './config-fields.js';
import { HfFormatError } from './errors.js';
import { isPlainObject } from './safetensors-header.js';
import { parseGpt2Config } from './gpt2-config.js';
import { parseLlamaConfig } from './llama-config.js';
import type { ModelConfig } from './model-config.js';

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
