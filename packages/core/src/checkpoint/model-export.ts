// The model as a plain Hugging Face checkpoint directory: config.json plus model.safetensors (or shards and
// model.safetensors.index.json above a size), under the HF names and layouts, loadable by openHfModel and
// by transformers' from_pretrained. Weights are read back from the GPU one tensor at a time while the file
// is written, so the model is never held in host memory whole.
import { copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { GpuRuntime, Tensor } from '@lsp-offload/gpu-dawn';
import {
  float32ToBf16Bits,
  float32ToF16Bits,
  writeCheckpointDir,
  writeTextFileAtomically,
  type SafetensorsDtype,
  type TensorToWrite,
} from '../hf/index.js';
import type { ModelWeights } from '../model/weights.js';
import type { Trainer } from '../trainer/trainer.js';
import { replaceDirectoryAtomically } from './atomic-directory.js';
import { configJsonFor, type SavedWeightDtype } from './config-json.js';
import { CheckpointError } from './errors.js';
import {
  EXPORT_MARKER_FILE,
  exportTargetProblem,
  isOwnExport,
  type ExportTargetOptions,
} from './export-target.js';

const SAFETENSORS_DTYPE: Readonly<Record<SavedWeightDtype, SafetensorsDtype>> = {
  f32: 'F32',
  f16: 'F16',
  bf16: 'BF16',
};

/** Tokenizer and generation files copied from the source model directory, when present. */
export const AUXILIARY_MODEL_FILES: readonly string[] = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
  'chat_template.jinja',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
];

export interface ModelFilesOptions {
  /** The dtype to store; default the weights' own (exact). f32 weights may be narrowed (round to nearest even). */
  readonly dtype?: SavedWeightDtype;
  /** The original config.json (parsed), to keep its extra fields; default rendered from the model config. */
  readonly configJson?: unknown;
  /** Shard above this many bytes (default 5 GB, like transformers). */
  readonly maxShardBytes?: number;
}

export interface ExportOptions extends ModelFilesOptions, ExportTargetOptions {
  /** The Hugging Face directory the run started from: its tokenizer and generation files are copied. */
  readonly sourceDir?: string;
}

/** The GPU weights to write: a Trainer (flushed first, so no pending update is left out) or weights as they are. */
export type ModelSource = Trainer | { readonly gpu: GpuRuntime; readonly weights: ModelWeights };

/**
 * Writes a plain HF checkpoint directory at `dir`, atomically, with a marker file saying it is ours. The
 * target must be new or empty, or (with `force`) an earlier export of ours, which is replaced only once
 * the new one is complete; never one of `protectedDirs` (see export-target.ts).
 */
export async function exportHfModel(
  dir: string,
  model: ModelSource,
  options: ExportOptions = {},
): Promise<void> {
  const problem = await exportTargetProblem(dir, options);
  if (problem) throw new CheckpointError(resolve(dir), problem);
  if ('flush' in model) await model.flush();
  const { gpu, weights } = model;
  await replaceDirectoryAtomically(
    dir,
    async (temp) => {
      await writeModelFiles(temp, gpu, weights, options);
      if (options.sourceDir !== undefined) await copyAuxiliaryFiles(options.sourceDir, temp);
      await writeTextFileAtomically(
        join(temp, EXPORT_MARKER_FILE),
        `${JSON.stringify({ format: 'lsp-offload-export', exportedAt: new Date().toISOString() }, null, 2)}\n`,
      );
    },
    {
      // checked again here: the folder may have changed since the check above
      mayReplace: async (existing) => options.force === true && isOwnExport(existing),
      whatMayBeReplaced: `an lsp-offload export (no ${EXPORT_MARKER_FILE})`,
    },
  );
}

/** The tokenizer and generation files of `sourceDir` that exist, copied into `dir`. */
export async function copyAuxiliaryFiles(sourceDir: string, dir: string): Promise<void> {
  for (const name of AUXILIARY_MODEL_FILES) {
    const from = join(sourceDir, name);
    if (existsSync(from)) await copyFile(from, join(dir, name));
  }
}

/** config.json and the weights' safetensors into an existing directory (each file written atomically). */
export async function writeModelFiles(
  dir: string,
  gpu: GpuRuntime,
  weights: ModelWeights,
  options: ModelFilesOptions = {},
): Promise<void> {
  const dtype = options.dtype ?? weights.dtype;
  const configJson = configJsonFor(weights.config, weights.specs, dtype, options.configJson);
  await writeTextFileAtomically(join(dir, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
  const tensors: TensorToWrite[] = weights.specs.map((spec) => ({
    name: spec.name,
    dtype: SAFETENSORS_DTYPE[dtype],
    shape: spec.shape,
    data: () => readWeight(gpu, weights.get(spec.name), dtype),
  }));
  await writeCheckpointDir(dir, tensors, { maxShardBytes: options.maxShardBytes });
}

/** One weight in the saved dtype; f16 weights saved as f16 keep their exact bits (NaN payloads included). */
async function readWeight(gpu: GpuRuntime, t: Tensor, dtype: SavedWeightDtype): Promise<ArrayBufferView> {
  if (t.dtype === 'f16' && dtype === 'f16') {
    const raw = await gpu.readBytes(t.buffer, t.byteOffset, t.bindingSize, t.label);
    return new Uint16Array(raw, 0, t.numel);
  }
  const values = (await gpu.read(t)) as Float32Array;
  if (dtype === 'f32') return values;
  return dtype === 'f16' ? float32ToF16Bits(values) : float32ToBf16Bits(values);
}
