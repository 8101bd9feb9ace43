// Shared by the CLI tests that train through the binary: a small random LLaMA saved in f16 with the
// llama-style tokenizer, a small JSONL data set for it, and a runner of the built binary.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpuRuntime, ModelWeights, Rng, parseModelConfig, writeModelFiles } from '@lsp-offload/core';

export const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
export const fixtures = fileURLToPath(new URL('../../core/fixtures/hf/', import.meta.url));

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], options: { cwd?: string } = {}): CliResult {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', ...options });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Writes the model into `dir` (created): config.json, model.safetensors (f16) and the tokenizer files. */
export async function writeSmallModel(
  dir: string,
  configFields: Record<string, unknown> = {},
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const gpu = await GpuRuntime.create();
  const config = parseModelConfig(
    {
      model_type: 'llama',
      vocab_size: 456,
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 48,
      tie_word_embeddings: false,
      ...configFields,
    },
    'test model',
  );
  const weights = ModelWeights.random(gpu, config, 'f32', new Rng(4));
  await writeModelFiles(dir, gpu, weights, { dtype: 'f16' });
  weights.release();
  gpu.destroy();
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(fixtures, 'tokenizers', 'llama-style', f), join(dir, f));
}

/** `count` prompt/response lines for the model's tokenizer, written to `file`. */
export function writeSmallData(file: string, count = 40): void {
  const lines = Array.from({ length: count }, (_, i) =>
    JSON.stringify({ prompt: `hello world ${i % 7}`, response: `the quick brown fox ${i % 5}` }),
  );
  writeFileSync(file, `${lines.join('\n')}\n`);
}
