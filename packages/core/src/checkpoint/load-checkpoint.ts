// Loading a training checkpoint and resuming from it. loadCheckpoint() reads and checks the manifest and
// every file it lists (size always, SHA-256 by default) without touching the GPU; restoreTrainer() puts the
// weights, optimizer state, projectors and step into a trainer built with the same options; resumeTraining()
// builds that trainer from the checkpoint itself. Every problem is a CheckpointError (or the HF readers'
// HfFormatError) naming the file and what is wrong.
import type { GpuRuntime } from '@lsp-offload/gpu-dawn';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  listParameters,
  loadModelConfig,
  openHfModel,
  type ModelConfig,
  type TensorReader,
} from '../hf/index.js';
import { ModelWeights } from '../model/weights.js';
import type { TrainerOptions, TrainMode } from '../options/trainer-options.js';
import { Trainer } from '../trainer/trainer.js';
import { recoverInterruptedReplace } from './atomic-directory.js';
import { parameterDifferences } from './config-json.js';
import { CheckpointError } from './errors.js';
import { verifyFile } from './file-digest.js';
import {
  MANIFEST_FILE,
  PROJECTORS_FILE,
  optimizerFileOf,
  parseManifest,
  type CheckpointManifest,
} from './manifest.js';
import { readCpuOptimizerState, readGpuOptimizerState } from './optimizer-state.js';
import { readProjectors, REFIT_RNG } from './projector-state.js';
import { applyResumeChanges, type ResumeChanges } from './resume-changes.js';

/** A checked checkpoint directory: its manifest and the model config of its config.json. */
export interface Checkpoint {
  readonly dir: string;
  readonly manifest: CheckpointManifest;
  readonly config: ModelConfig;
}

export interface LoadCheckpointOptions {
  /** Hash every file against the manifest (default true); false checks sizes only (faster on big models). */
  readonly checksums?: boolean;
}

/** Options a resumed run may change: they decide speed and memory, not the numbers. */
export type RuntimeOptions = Pick<
  TrainerOptions,
  'threads' | 'pipelined' | 'checkpointing' | 'lossChunkTokens'
>;

/** Options whose change would make the saved optimizer state or projectors meaningless. */
const STATE_DEFINING_OPTIONS = [
  'mode',
  'rank',
  'nnz',
  'exactProjectors',
  'nonProjected',
  'stepDtype',
  'optimizerShardBytes',
] as const satisfies readonly (keyof TrainerOptions)[];

export interface ResumeOptions {
  readonly runtime?: Partial<RuntimeOptions>;
  /** The mode the caller asks for (e.g. --mode): refused when the checkpoint was saved in another. */
  readonly mode?: TrainMode;
  /** The model the caller asks for (e.g. --model): refused when its parameters differ from the checkpoint's. */
  readonly model?: ModelConfig;
  /** Options changed from the saved ones (learning rate, schedule, ...; see resume-changes.ts). */
  readonly changes?: ResumeChanges;
}

export interface ResumedRun {
  readonly trainer: Trainer;
  /** The trainer's weights (the caller releases them after trainer.destroy()). */
  readonly weights: ModelWeights;
  readonly checkpoint: Checkpoint;
}

/**
 * Reads and checks a checkpoint directory: the manifest, and every file it lists against its size and
 * SHA-256. A save interrupted by a crash is first finished or rolled back (see atomic-directory.ts).
 */
export async function loadCheckpoint(dir: string, options: LoadCheckpointOptions = {}): Promise<Checkpoint> {
  const root = resolve(dir);
  await recoverInterruptedReplace(root);
  const manifestPath = join(root, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      manifestPath,
      code === 'ENOENT'
        ? 'missing: not an lsp-offload training checkpoint (a plain Hugging Face model directory starts a new run instead)'
        : `cannot read: ${(e as Error).message}`,
    );
  }
  const manifest = parseManifest(manifestPath, text);
  const mode = manifest.options.mode;
  const required = ['config.json', optimizerFileOf(mode), ...(mode === 'lsp' ? [PROJECTORS_FILE] : [])];
  for (const name of required)
    if (!Object.hasOwn(manifest.files, name))
      throw new CheckpointError(manifestPath, `does not list ${name}, which a ${mode} checkpoint must have`);
  for (const [name, digest] of Object.entries(manifest.files))
    await verifyFile(join(root, name), digest, options.checksums ?? true);
  const config = await loadModelConfig(root);
  return { dir: root, manifest, config };
}

/**
 * Builds the weights and the trainer from a checkpoint and restores its state: the next trainStep
 * continues exactly where the saved run would have (same losses and weights, bit for bit in f32).
 */
export async function resumeTraining(
  gpu: GpuRuntime,
  checkpoint: Checkpoint,
  options: ResumeOptions = {},
): Promise<ResumedRun> {
  const { manifest } = checkpoint;
  const manifestPath = join(checkpoint.dir, MANIFEST_FILE);
  if (options.mode !== undefined && options.mode !== manifest.options.mode)
    throw modeMismatch(manifestPath, manifest.options.mode, options.mode);
  if (options.model !== undefined) {
    const problems = parameterDifferences(listParameters(checkpoint.config), listParameters(options.model));
    if (problems.length > 0)
      throw new CheckpointError(
        join(checkpoint.dir, 'config.json'),
        `the checkpoint is of another model shape than the one asked for: ${problems.slice(0, 6).join('; ')}`,
      );
  }
  const hf = await openHfModel(checkpoint.dir);
  let weights: ModelWeights | undefined;
  let trainer: Trainer | undefined;
  try {
    weights = await ModelWeights.load(gpu, hf, manifest.model.dtype);
    const asked = applyResumeChanges(manifestPath, manifest.options, options.changes);
    trainer = await Trainer.create(gpu, weights, { ...asked, ...options.runtime });
    await restoreTrainingState(trainer, checkpoint);
    return { trainer, weights, checkpoint };
  } catch (e) {
    await trainer?.destroy();
    weights?.release();
    throw e;
  } finally {
    await hf.close();
  }
}

/**
 * Restores a checkpoint into an existing trainer built with the same mode, projector settings, model shape
 * and weight dtype: weights, optimizer state, projectors (lsp) and the step counter.
 */
export async function restoreTrainer(trainer: Trainer, checkpoint: Checkpoint): Promise<void> {
  checkCompatible(trainer, checkpoint);
  await trainer.flush();
  const hf = await openHfModel(checkpoint.dir);
  try {
    await overwriteWeights(trainer, hf.weights);
  } finally {
    await hf.close();
  }
  await restoreTrainingState(trainer, checkpoint);
}

/** Everything but the weights (which the trainer was built from, or were just overwritten). */
async function restoreTrainingState(trainer: Trainer, checkpoint: Checkpoint): Promise<void> {
  checkCompatible(trainer, checkpoint);
  const { dir, manifest } = checkpoint;
  const mode = manifest.options.mode;
  const optimizerPath = join(dir, optimizerFileOf(mode));
  if (mode === 'native') await readGpuOptimizerState(optimizerPath, trainer);
  else {
    const cpu = trainer.cpuOptimizer;
    if (!cpu) throw new Error(`the ${mode} trainer has no CPU optimizer`);
    readCpuOptimizerState(optimizerPath, cpu);
    // the state restores the saved hyper-parameters; the trainer's (changed on resume) act from now on
    const o = trainer.options;
    cpu.setHyperParams('default', { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay });
  }
  if (mode === 'lsp') await readProjectors(join(dir, PROJECTORS_FILE), trainer);
  const refitRng = manifest.rng[REFIT_RNG];
  // refits after the resume draw the positions the uninterrupted run would have drawn
  if (refitRng && trainer.refitRngState) trainer.restoreRefitRng(refitRng);
  trainer.restoreStep(manifest.step);
  // (a run resumed in another precision starts loss scaling afresh)
  if (manifest.lossScale && manifest.options.precision === trainer.precision)
    trainer.restoreLossScale(manifest.lossScale);
  // the GPU writes above are queued; make them land before the caller's next step is recorded
  await trainer.gpu.sync('restoring a checkpoint');
}

function checkCompatible(trainer: Trainer, checkpoint: Checkpoint): void {
  const { manifest } = checkpoint;
  const manifestPath = join(checkpoint.dir, MANIFEST_FILE);
  if (trainer.options.mode !== manifest.options.mode)
    throw modeMismatch(manifestPath, manifest.options.mode, trainer.options.mode);
  const differences = STATE_DEFINING_OPTIONS.filter((k) => trainer.options[k] !== manifest.options[k]).map(
    (k) => `${k} ${JSON.stringify(manifest.options[k])} saved, ${JSON.stringify(trainer.options[k])} now`,
  );
  if (differences.length > 0)
    throw new CheckpointError(manifestPath, `saved with other trainer options: ${differences.join('; ')}`);
  const problems = parameterDifferences(listParameters(checkpoint.config), trainer.weights.specs);
  if (problems.length > 0)
    throw new CheckpointError(
      join(checkpoint.dir, 'config.json'),
      `the checkpoint's model does not match the trainer's: ${problems.slice(0, 6).join('; ')}`,
    );
  if (trainer.weights.dtype !== manifest.model.dtype)
    throw new CheckpointError(
      manifestPath,
      `saved with ${manifest.model.dtype} weights, the trainer has ${trainer.weights.dtype} weights`,
    );
}

function modeMismatch(path: string, saved: TrainMode, asked: TrainMode): CheckpointError {
  return new CheckpointError(
    path,
    `saved in mode ${saved}, cannot resume in mode ${asked}: the optimizer state differs between modes (resume with --mode ${saved}, or start a new ${asked} run from the checkpoint's weights)`,
  );
}

/** The trainer's weights, overwritten in place (f16 weights get the stored bits, no conversion). */
async function overwriteWeights(trainer: Trainer, reader: TensorReader): Promise<void> {
  const { gpu, weights } = trainer;
  for (const spec of weights.specs) {
    const t = weights.get(spec.name);
    const data =
      t.dtype === 'f16'
        ? (await reader.readFloat16(spec.name)).data
        : (await reader.readFloat32(spec.name)).data;
    gpu.write(t, data);
  }
}
