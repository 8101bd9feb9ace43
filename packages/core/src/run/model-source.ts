// What --model names, the same for train, plan and bench: a preset shape (demo, llama-tiny, ...; random
// weights) or a Hugging Face model directory (its config.json).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelConfig, type ModelConfig } from '../hf/index.js';
import { MODEL_PRESETS, presetConfig } from './presets.js';

export async function resolveModelConfig(model: string): Promise<ModelConfig> {
  if (MODEL_PRESETS[model]) return presetConfig(model);
  if (existsSync(model) && statSync(model).isDirectory()) {
    if (!existsSync(join(model, 'config.json')))
      throw new Error(
        `--model ${model}: the directory has no config.json (not a Hugging Face model directory)`,
      );
    return loadModelConfig(model);
  }
  throw new Error(
    `--model '${model}' is neither a preset (${Object.keys(MODEL_PRESETS).join(', ')}) nor a model directory`,
  );
}
