// Saving a training checkpoint: a directory that is a plain HF model directory (config.json and the
// weights under HF names, loadable by openHfModel and transformers) plus the optimizer state, the projector
// pairs (lsp) and the manifest. The whole directory is replaced atomically: the previous checkpoint stays in
// place until the new one is complete and synced.
import { readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeTextFileAtomically } from '../hf/index.js';
import type { BatchLoaderState } from '../data/batch-loader.js';
import type { RngState } from '../util/rng.js';
import type { Trainer } from '../trainer/trainer.js';
import { replaceDirectoryAtomically } from './atomic-directory.js';
import { CheckpointError } from './errors.js';
import { digestFile, type FileDigest } from './file-digest.js';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  CPU_OPTIMIZER_FILE,
  GPU_OPTIMIZER_FILE,
  MANIFEST_FILE,
  PROJECTORS_FILE,
  type CheckpointManifest,
} from './manifest.js';
import { copyAuxiliaryFiles, writeModelFiles } from './model-export.js';
import { writeCpuOptimizerState, writeGpuOptimizerState } from './optimizer-state.js';
import { REFIT_RNG, writeProjectors } from './projector-state.js';

export interface CheckpointContents {
  readonly trainer: Trainer;
  /** The batch loader's position (BatchLoader.state()) before the next batch. */
  readonly data?: BatchLoaderState;
  /** Other generators of the run, by name, to restore with Rng.fromState. */
  readonly rng?: Readonly<Record<string, RngState>>;
  /** JSON-safe records kept so far (e.g. StepMetrics and evaluations); returned as saved. */
  readonly metrics?: readonly object[];
  /** The model's original config.json (parsed), to keep its extra fields; default rendered from its config. */
  readonly configJson?: unknown;
  /** The HF directory the run started from: its tokenizer and generation files are copied in. */
  readonly sourceDir?: string;
}

export interface SaveCheckpointOptions {
  /** Shard the weights above this many bytes (default 5 GB, like transformers). */
  readonly maxShardBytes?: number;
}

/**
 * Flushes the trainer's pending updates, then writes the checkpoint to `dir`, replacing a checkpoint there
 * only once the new one is complete. Returns the manifest written.
 */
export async function saveCheckpoint(
  dir: string,
  contents: CheckpointContents,
  options: SaveCheckpointOptions = {},
): Promise<CheckpointManifest> {
  const { trainer } = contents;
  // the saved weights and optimizer state must include every update of the steps done
  await trainer.flush();
  const mode = trainer.options.mode;
  const partial: Omit<CheckpointManifest, 'files'> = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step: trainer.step,
    savedAt: new Date().toISOString(),
    options: trainer.options,
    model: {
      family: trainer.weights.config.family,
      dtype: trainer.weights.dtype,
      parameters: trainer.weights.specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0),
    },
    data: contents.data ?? null,
    rng: {
      ...contents.rng,
      ...(trainer.refitRngState && { [REFIT_RNG]: trainer.refitRngState }),
    },
    metrics: contents.metrics ?? [],
    lossScale: trainer.lossScaleStatus,
  };
  // fail before writing gigabytes when the records cannot be stored as JSON
  checkJsonSafe(dir, partial);

  let manifest: CheckpointManifest | undefined;
  await replaceDirectoryAtomically(
    dir,
    async (temp) => {
      await writeModelFiles(temp, trainer.gpu, trainer.weights, {
        configJson: contents.configJson,
        maxShardBytes: options.maxShardBytes,
      });
      if (contents.sourceDir !== undefined) await copyAuxiliaryFiles(contents.sourceDir, temp);
      if (mode === 'native') await writeGpuOptimizerState(join(temp, GPU_OPTIMIZER_FILE), trainer);
      else {
        const cpu = trainer.cpuOptimizer;
        if (!cpu) throw new Error(`the ${mode} trainer has no CPU optimizer`);
        await writeCpuOptimizerState(join(temp, CPU_OPTIMIZER_FILE), cpu);
      }
      if (mode === 'lsp') await writeProjectors(join(temp, PROJECTORS_FILE), trainer);
      const files: Record<string, FileDigest> = {};
      for (const name of (await readdir(temp)).sort()) files[name] = await digestFile(join(temp, name));
      manifest = { ...partial, files };
      // written last: a directory with a manifest has every file the manifest lists
      await writeTextFileAtomically(join(temp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    },
    {
      mayReplace: async (existing) => existsSync(join(existing, MANIFEST_FILE)),
      whatMayBeReplaced: `an lsp-offload checkpoint (no ${MANIFEST_FILE})`,
    },
  );
  return manifest!;
}

function checkJsonSafe(dir: string, value: object): void {
  try {
    JSON.stringify(value);
  } catch (e) {
    throw new CheckpointError(
      dir,
      `the checkpoint's records cannot be stored as JSON: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}
