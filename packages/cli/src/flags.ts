// The flags of `train`, `plan` and `bench` in one table, their defaults read from the library's
// (DEFAULT_TRAINER_OPTIONS, DEFAULT_REFIT, the run defaults), and the parsers that check their values.
// A command lists the flags it takes; where a default depends on the model (the demo or a model
// directory, its positions, the run's steps) the help says so and the command applies it (trainDefaults).
import type { Command } from 'commander';
import {
  BENCH_DEFAULTS,
  DEFAULT_KEEP_CHECKPOINTS,
  DEFAULT_REFIT,
  DEFAULT_TRAINER_OPTIONS as TRAINER,
  LR_SCHEDULES,
  MODEL_PRESETS,
  MODEL_RUN_DEFAULTS,
  PRECISIONS,
  TRAIN_MODES,
  runDefaults,
  type RunFit,
} from '@lsp-offload/core';
import { sizeText } from './size.js';

/** The values of the flags that take one of a few words. */
export const CHOICES = {
  dtype: ['auto', 'f16', 'f32'],
  precision: ['auto', ...PRECISIONS],
  nonProjected: ['frozen', 'adamw'],
  transferDtype: ['f16', 'f32'],
  embeddingGrad: ['rows', 'dense'],
  sharing: ['type', 'layer'],
  exportDtype: ['f32', 'f16', 'bf16'],
  invalidLines: ['error', 'skip'],
} as const;

interface FlagSpec {
  flags: string;
  description: string;
  /** Given to commander (shown in the help, applied when the flag is absent). */
  default?: string;
}

/** Run defaults that depend on the model, as flag values. */
export interface ModelDependentDefaults {
  rank: string;
  steps: string;
  batch: string;
  seq: string;
  lr: string;
  evalEvery: string;
}

/** `train`'s (and `plan`'s) defaults for `model` ('demo' or a model directory), fitted as runDefaults. */
export function trainDefaults(model: string, fit: RunFit = {}): ModelDependentDefaults {
  const d = runDefaults(model, fit);
  return {
    rank: String(d.rank),
    steps: String(d.steps),
    batch: String(d.batch),
    seq: String(d.seqLen),
    lr: d.lr.toExponential(),
    evalEvery: String(d.evalEvery),
  };
}

/**
 * The flags as given, with the model-dependent ones that were not given from trainDefaults (fitted to the
 * model's positions where known, and to --steps when given).
 */
export function withModelDefaults<T extends { model: string } & Partial<ModelDependentDefaults>>(
  given: T,
  positions?: number,
): T & ModelDependentDefaults {
  const fit: RunFit = {
    ...(positions !== undefined && { positions }),
    ...(given.steps !== undefined && { steps: int('steps', given.steps) }),
  };
  const out = { ...trainDefaults(given.model, fit) } as T & ModelDependentDefaults;
  for (const [key, value] of Object.entries(given))
    if (value !== undefined) Object.assign(out, { [key]: value });
  return out;
}

/** "(demo: 64, else 256)" for a model-dependent flag; `fitted` says how the default is fitted. */
function byModel(key: keyof ModelDependentDefaults, fitted = ''): string {
  const demo = trainDefaults('demo')[key];
  const model = trainDefaults('')[key];
  return `(demo: ${demo}, else ${model}${fitted})`;
}

const dtypeAuto = '(auto: f16 where the adapter has it)';

const FLAGS = {
  model: {
    flags: '--model <dir|demo>',
    description: 'Hugging Face model directory, or demo',
    default: 'demo',
  },
  data: {
    flags: '--data <files...>',
    description: '.jsonl ({"prompt","response"}, alpaca, {"text"}) or .txt files',
  },
  evalData: {
    flags: '--eval-data <files...>',
    description: 'evaluate on these files instead of a held-out split of --data',
  },
  mode: {
    flags: `--mode <${TRAIN_MODES.join('|')}>`,
    description: 'lsp: learned sparse projectors; zero: ZeRO-Offload style; native: all on the GPU',
    default: TRAINER.mode,
  },
  gpuMemory: {
    flags: '--gpu-memory <size>',
    description: 'GPU memory budget, e.g. 4GiB (simulates a smaller card)',
  },
  rank: { flags: '--rank <d>', description: `projector subspace size d ${byModel('rank')}` },
  nnz: { flags: '--nnz <r>', description: 'non-zeros per projector row r', default: String(TRAINER.nnz) },
  steps: { flags: '--steps <n>', description: `optimizer steps ${byModel('steps')}` },
  batch: { flags: '--batch <n>', description: `sequences per step ${byModel('batch')}` },
  seq: {
    flags: '--seq <n>',
    description: `tokens per sequence ${byModel('seq', " or the model's positions if fewer")}`,
  },
  lr: { flags: '--lr <x>', description: `learning rate ${byModel('lr')}` },
  dtype: {
    flags: `--dtype <${CHOICES.dtype.join('|')}>`,
    description: `weight storage on the GPU ${dtypeAuto}`,
    default: MODEL_RUN_DEFAULTS.dtype,
  },
  precision: {
    flags: `--precision <${['auto', ...PRECISIONS].join('|')}>`,
    description:
      'mixed: f16 activations and gradients on tensor cores with f32 accumulation, residual stream, loss and ' +
      'weight gradients, and a dynamic loss scale; f32: everything f32 (auto: mixed where the adapter has shader-f16)',
    default: TRAINER.precision,
  },
  evalEvery: {
    flags: '--eval-every <n>',
    description: `evaluate on held-out data every n steps ${byModel('evalEvery', '; at most steps / 3')}`,
  },
  evalBatches: {
    flags: '--eval-batches <n>',
    description: 'held-out batches per evaluation',
    default: String(MODEL_RUN_DEFAULTS.evalBatches),
  },
  checkpointing: {
    flags: '--no-checkpointing',
    description: 'keep all activations instead of recomputing blocks in the backward',
  },
  nonProjected: {
    flags: `--non-projected <${CHOICES.nonProjected.join('|')}>`,
    description: 'lsp: embeddings, norms, biases and lm_head frozen or trained by offloaded AdamW',
    default: TRAINER.nonProjected,
  },
  gradDtype: {
    flags: `--grad-dtype <${CHOICES.transferDtype.join('|')}>`,
    description:
      'lsp: gradients (S and the non-projected ones) go to the CPU as fp16 with a per-tensor scale, or as f32',
    default: TRAINER.gradientDtype,
  },
  stepDtype: {
    flags: `--step-dtype <${CHOICES.transferDtype.join('|')}>`,
    description: 'lsp: the subspace step D comes back as fp16 (in units of the learning rate) or f32',
    default: TRAINER.stepDtype,
  },
  embeddingGrad: {
    flags: `--embedding-grad <${CHOICES.embeddingGrad.join('|')}>`,
    description:
      "lsp: the token embedding's gradient goes to the CPU as the rows the batch touched (same numbers), or whole",
    default: TRAINER.embeddingGradient,
  },
  threads: {
    flags: '--threads <n>',
    description: 'CPU optimizer threads (0: all cores)',
    default: String(TRAINER.threads),
  },
  stagingChunk: {
    flags: '--staging-chunk <size>',
    description: 'largest staging buffer of the transfer rings (smaller for small models)',
    default: sizeText(TRAINER.stagingChunkBytes),
  },
  optimizerShard: {
    flags: '--optimizer-shard <size>',
    description: 'CPU AdamW steps larger dense parameters in row blocks of this size',
    default: sizeText(TRAINER.optimizerShardBytes),
  },
  seed: { flags: '--seed <n>', description: 'random seed', default: String(TRAINER.seed) },
  metricsOut: {
    flags: '--metrics-out <file.jsonl>',
    description: 'write one JSON object per step and per evaluation',
  },
  report: {
    flags: '--report <file.html>',
    description: 'write an HTML report of the run (loss, throughput, time, bytes)',
  },
  progress: { flags: '--no-progress', description: 'plain log lines instead of a progress bar' },
  checkpointDir: {
    flags: '--checkpoint-dir <dir>',
    description: 'save a checkpoint there (atomically) every --save-every steps and at the end',
  },
  saveEvery: { flags: '--save-every <n>', description: 'steps between checkpoints' },
  keepCheckpoints: {
    flags: '--keep-checkpoints <n>',
    description: 'the newest checkpoints kept in --checkpoint-dir',
    default: String(DEFAULT_KEEP_CHECKPOINTS),
  },
  resume: {
    flags: '--resume <dir>',
    description:
      'continue from a checkpoint, or the latest in a --checkpoint-dir (same --model/--data; flags left out take the saved values)',
  },
  export: {
    flags: '--export <dir>',
    description: 'write the fine-tuned model as a plain Hugging Face directory at the end',
  },
  force: {
    flags: '--force',
    description: 'let --export replace an earlier export (never other files)',
  },
  trace: {
    flags: '--trace <file.json>',
    description: 'write a Chrome/Perfetto trace of one step (CPU recording, transfers, optimizer, GPU)',
  },
  traceStep: { flags: '--trace-step <n>', description: 'which step to trace (default: the third)' },
  refitEvery: {
    flags: '--refit-every <n>',
    description: 'lsp: check the projectors every n steps and refit those above --alpha',
  },
  warmupSteps: {
    flags: '--warmup-steps <n>',
    description: 'raise the learning rate linearly from 0 over the first n steps',
    default: String(TRAINER.warmupSteps),
  },
  lrSchedule: {
    flags: `--lr-schedule <${LR_SCHEDULES.join('|')}>`,
    description: 'after the warmup: keep --lr, or decay it linearly or by a cosine to 0 at the last step',
    default: TRAINER.lrSchedule,
  },
  weightDecay: {
    flags: '--weight-decay <x>',
    description: 'decoupled AdamW weight decay',
    default: String(TRAINER.weightDecay),
  },
  maxGradNorm: {
    flags: '--max-grad-norm <x>',
    description:
      'clip the global gradient norm to x (0: off); lsp clips the norm of what it steps: the compressed ' +
      'gradients of the projected layers and the dense ones of the rest',
    default: String(TRAINER.maxGradNorm),
  },
  gradAccum: {
    flags: '--grad-accum <n>',
    description:
      'micro-batches of --batch sequences per optimizer step (their mean gradient): a larger effective batch in the same memory',
    default: String(TRAINER.gradAccum),
  },
  exportDtype: {
    flags: `--export-dtype <${CHOICES.exportDtype.join('|')}>`,
    description: "--export's weight dtype (default: the input checkpoint's)",
  },
  logEvery: {
    flags: '--log-every <n>',
    description: 'without a progress bar (or stderr not a terminal): a line every n steps',
    default: '1',
  },
  invalidLines: {
    flags: `--invalid-lines <${CHOICES.invalidLines.join('|')}>`,
    description: 'invalid data lines stop the run, or are left out and counted',
    default: 'error',
  },
  eosToken: {
    flags: '--eos-token <token|id>',
    description:
      "the token ending every example (default: the tokenizer's eos_token, else config.json's eos_token_id)",
  },
  alpha: {
    flags: '--alpha <e>',
    description: 'lsp refits: relative reconstruction error above which a pair is refitted',
    default: String(DEFAULT_REFIT.alpha),
  },
  refitAtStart: {
    flags: '--refit-at-start',
    description: 'lsp refits: check (and learn) the random starting projectors before the first step too',
  },
  sharing: {
    flags: `--sharing <${CHOICES.sharing.join('|')}>`,
    description: 'lsp refits: one projector pair per layer type or per layer',
    default: DEFAULT_REFIT.sharing,
  },
  json: { flags: '--json', description: 'print the plan as JSON' },
  preset: {
    flags: '--model <preset>',
    description: `model shape: a preset (${Object.keys(MODEL_PRESETS).join(', ')}) or a Hugging Face model directory (its config.json; random weights)`,
    default: BENCH_DEFAULTS.preset,
  },
  modes: {
    flags: '--modes <list>',
    description: 'modes with optional GPU budgets, e.g. lsp:4GiB,zero:4GiB,native',
    default: TRAIN_MODES.join(','),
  },
  warmup: {
    flags: '--warmup <n>',
    description: 'unmeasured steps first',
    default: String(BENCH_DEFAULTS.warmupSteps),
  },
  robustness: {
    flags: '--no-robustness',
    description: "turn off Dawn's bounds clamping in shaders (faster)",
  },
  out: { flags: '--out <dir>', description: 'write bench.json, bench.txt and bench.html there' },
  traceDir: {
    flags: '--trace-dir <dir>',
    description: "write a Chrome/Perfetto trace of each mode's last step there",
  },
  profileKernels: {
    flags: '--profile-kernels',
    description:
      'after the measured steps, time every dispatch of one more step: GPU time by kernel family (shares)',
  },
} satisfies Record<string, FlagSpec>;

export type FlagName = keyof typeof FLAGS;

/** The flag as typed, e.g. '--lr' for lr. */
export function flagOf(name: FlagName): string {
  return FLAGS[name].flags.split(' ')[0]!;
}

/** Add the named flags to a command; `overrides` changes a flag's description or default for it. */
export function addFlags(
  command: Command,
  names: readonly FlagName[],
  overrides: Partial<Record<FlagName, Partial<FlagSpec>>> = {},
): Command {
  for (const name of names) {
    const spec: FlagSpec = { ...FLAGS[name], ...overrides[name] };
    command.option(spec.flags, spec.description, spec.default);
  }
  return command;
}

/** bench's own defaults (a short run of a preset shape), from the library's. */
export const BENCH_FLAG_OVERRIDES: Partial<Record<FlagName, Partial<FlagSpec>>> = {
  batch: { description: 'sequences per step', default: String(BENCH_DEFAULTS.batch) },
  seq: {
    description: `tokens per sequence (default ${BENCH_DEFAULTS.seqLen}, or the model's positions if fewer)`,
    default: undefined,
  },
  dtype: { description: `weight storage ${dtypeAuto}`, default: BENCH_DEFAULTS.dtype },
  rank: { description: 'projector subspace size d', default: String(BENCH_DEFAULTS.rank) },
  nnz: { description: 'non-zeros per projector row' },
  steps: { description: 'measured steps per mode', default: String(BENCH_DEFAULTS.steps) },
  checkpointing: { description: 'keep all activations' },
};

/** An integer flag value >= min; the error calls it `what`. */
export function int(
  flag: string,
  v: string,
  min = 1,
  what = min === 1 ? 'a positive integer' : `an integer >= ${min}`,
): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be ${what}, got '${v}'`);
  return n;
}

/** A positive number flag value. */
export function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} must be a positive number, got '${v}'`);
  return n;
}

/** A number flag value >= 0. */
export function nonNegative(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag} must be a number >= 0, got '${v}'`);
  return n;
}

/** One of a list of words. */
export function oneOf<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v))
    throw new Error(`--${flag} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

/** The flags of lsp's transfer formats, as trainer options. */
export function transferFormats(o: { gradDtype: string; stepDtype: string; embeddingGrad: string }) {
  return {
    gradientDtype: oneOf('grad-dtype', o.gradDtype, CHOICES.transferDtype),
    stepDtype: oneOf('step-dtype', o.stepDtype, CHOICES.transferDtype),
    embeddingGradient: oneOf('embedding-grad', o.embeddingGrad, CHOICES.embeddingGrad),
  };
}
