// The checkpoint manifest (checkpoint.json): what a training checkpoint directory holds besides the plain
// HF model files, and everything a resumed run needs that is not a tensor: the step, the trainer options,
// the data position, generator states and the metrics so far, plus the size and SHA-256 of every other
// file so a truncated or altered file is named on load. Its presence is what marks a directory as a
// training checkpoint (a plain export has none).
import type { RngState } from '../util/rng.js';
import type { BatchLoaderState } from '../data/batch-loader.js';
import type { ModelFamily } from '../hf/index.js';
import { isPlainObject } from '../hf/safetensors-header.js';
import type { WeightDtype } from '../model/weights.js';
import {
  DEFAULT_TRAINER_OPTIONS,
  TRAIN_MODES,
  type TrainerOptions,
  type TrainMode,
} from '../options/trainer-options.js';
import type { LossScaleStatus } from '../trainer/loss-scaler.js';
import { CheckpointError } from './errors.js';
import type { FileDigest } from './file-digest.js';

export const MANIFEST_FILE = 'checkpoint.json';
/** lsp and zero: the CPU AdamW's stateDict() (moments, fp32 masters, per-tensor step counts). */
export const CPU_OPTIMIZER_FILE = 'optimizer.safetensors';
/** native: the GPU AdamW state, `<param>.exp_avg`, `<param>.exp_avg_sq` and (f16 weights) `<param>.master`. */
export const GPU_OPTIMIZER_FILE = 'gpu_optimizer.safetensors';
/** lsp: every projected layer's pair, `<param>.left.*` and `<param>.right.*` (positions, values, d). */
export const PROJECTORS_FILE = 'projectors.safetensors';

export const CHECKPOINT_FORMAT = 'lsp-offload-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointManifest {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly version: typeof CHECKPOINT_VERSION;
  /** Optimizer steps done; the resumed trainer's next step is step + 1. */
  readonly step: number;
  /** ISO time of the save. */
  readonly savedAt: string;
  readonly options: TrainerOptions;
  readonly model: { readonly family: ModelFamily; readonly dtype: WeightDtype; readonly parameters: number };
  /** Every file but the manifest, by name, with its size and SHA-256. */
  readonly files: Readonly<Record<string, FileDigest>>;
  /** The batch loader's position (BatchLoader.state()), or null when the caller had none. */
  readonly data: BatchLoaderState | null;
  /** Other generators of the run by name (evaluation sampling, projector refits, ...). */
  readonly rng: Readonly<Record<string, RngState>>;
  /** Records the caller kept so far (e.g. StepMetrics per step), returned as saved. */
  readonly metrics: readonly unknown[];
  /** The loss scale and skipped steps so far (absent in checkpoints that predate mixed precision). */
  readonly lossScale?: LossScaleStatus;
}

/** The optimizer-state file of a mode. */
export function optimizerFileOf(mode: TrainMode): string {
  return mode === 'native' ? GPU_OPTIMIZER_FILE : CPU_OPTIMIZER_FILE;
}

/** Parses and checks a manifest's text; every problem is a CheckpointError naming `path`. */
export function parseManifest(path: string, text: string): CheckpointManifest {
  const fail = (problem: string): never => {
    throw new CheckpointError(path, problem);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`not valid JSON (${(e as Error).message}): the manifest is corrupt`);
  }
  if (!isPlainObject(json)) return fail('not a JSON object');
  if (json.format !== CHECKPOINT_FORMAT)
    fail(`"format" is ${JSON.stringify(json.format)}, expected "${CHECKPOINT_FORMAT}"`);
  if (json.version !== CHECKPOINT_VERSION)
    fail(
      `version ${JSON.stringify(json.version)} is not supported (this lsp-offload reads version ${CHECKPOINT_VERSION})`,
    );
  if (!isCount(json.step)) fail(`"step" must be a non-negative integer, got ${JSON.stringify(json.step)}`);
  if (typeof json.savedAt !== 'string') fail('"savedAt" must be a string');
  const options = parseOptions(json.options, fail);
  const model = json.model;
  if (
    !isPlainObject(model) ||
    (model.family !== 'llama' && model.family !== 'gpt2') ||
    (model.dtype !== 'f32' && model.dtype !== 'f16') ||
    !isCount(model.parameters)
  )
    fail('"model" must be {family: "llama"|"gpt2", dtype: "f32"|"f16", parameters: integer}');
  const files = json.files;
  if (!isPlainObject(files)) return fail('"files" must be an object (file name -> {bytes, sha256})');
  for (const [name, digest] of Object.entries(files)) {
    if (name.includes('/') || name.includes('\\') || name === '.' || name === '..' || name === MANIFEST_FILE)
      fail(`"files" lists ${JSON.stringify(name)}, which is not a file name of the checkpoint`);
    if (!isPlainObject(digest) || !isCount(digest.bytes) || typeof digest.sha256 !== 'string')
      fail(`"files"."${name}" must be {bytes: integer, sha256: hex string}`);
    if (!/^[0-9a-f]{64}$/.test((digest as { sha256: string }).sha256))
      fail(`"files"."${name}".sha256 is not a SHA-256 hex digest`);
  }
  if (json.data !== null && !isLoaderState(json.data))
    fail('"data" must be null or a batch loader state {epoch, index, rng, shuffle, rowCount, ...}');
  if (!isPlainObject(json.rng)) return fail('"rng" must be an object (name -> {state, inc})');
  for (const [name, state] of Object.entries(json.rng))
    if (!isRngState(state)) fail(`"rng"."${name}" must be {state: decimal string, inc: decimal string}`);
  if (!Array.isArray(json.metrics)) fail('"metrics" must be an array');
  const ls = json.lossScale;
  if (
    ls !== undefined &&
    !(
      isPlainObject(ls) &&
      typeof ls.scale === 'number' &&
      ls.scale > 0 &&
      isCount(ls.growthTracker) &&
      isCount(ls.skippedSteps)
    )
  )
    fail('"lossScale" must be {scale: number > 0, growthTracker: integer, skippedSteps: integer}');
  // every field is checked above; options get this version's defaults for keys the save predates
  return { ...(json as unknown as CheckpointManifest), options };
}

/**
 * The trainer options: each key with a default is checked against the default's type; optional options
 * without a default pass through as saved (Trainer.create checks them).
 */
function parseOptions(value: unknown, fail: (problem: string) => never): TrainerOptions {
  if (!isPlainObject(value)) return fail('"options" must be an object (the trainer options)');
  const defaults = new Map<string, unknown>(Object.entries(DEFAULT_TRAINER_OPTIONS));
  for (const [key, v] of Object.entries(value)) {
    const d = defaults.get(key);
    if (d === undefined) continue;
    const ok = Array.isArray(d)
      ? Array.isArray(v) && v.length === d.length && v.every((x) => typeof x === 'number')
      : typeof v === typeof d;
    if (!ok) fail(`"options"."${key}" must be like ${JSON.stringify(d)}, got ${JSON.stringify(v)}`);
  }
  const mode = value.mode;
  if (!(TRAIN_MODES as readonly unknown[]).includes(mode))
    fail(
      `"options"."mode" must be ${TRAIN_MODES.map((m) => JSON.stringify(m)).join(', ')}, got ${JSON.stringify(mode)}`,
    );
  return { ...DEFAULT_TRAINER_OPTIONS, ...value } as TrainerOptions;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isRngState(v: unknown): v is RngState {
  return (
    isPlainObject(v) &&
    typeof v.state === 'string' &&
    /^\d+$/.test(v.state) &&
    typeof v.inc === 'string' &&
    /^\d+$/.test(v.inc)
  );
}

function isLoaderState(v: unknown): v is BatchLoaderState {
  return (
    isPlainObject(v) &&
    isCount(v.epoch) &&
    isCount(v.index) &&
    isRngState(v.rng) &&
    typeof v.shuffle === 'boolean' &&
    isCount(v.rowCount) &&
    isCount(v.seqLen) &&
    isCount(v.batchSize) &&
    typeof v.dataFingerprint === 'string'
  );
}
