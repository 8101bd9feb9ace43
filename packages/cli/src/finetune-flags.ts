// The fine-tuning flags of `lsp-offload train` (learning-rate schedule, weight decay, clipping, gradient
// accumulation, export dtype, logging), added to the command and turned into trainer options.
import { Command } from 'commander';
import { LR_SCHEDULES, type LrScheduleKind, type TrainerOptions } from '@lsp-offload/core';
import { int, oneOf } from './train.js';

export interface FineTuneFlags {
  warmupSteps: string;
  lrSchedule: string;
  weightDecay: string;
  maxGradNorm: string;
  gradAccum: string;
  exportDtype?: string;
  logEvery: string;
  invalidLines: string;
  eosToken?: string;
}

export function addFineTuneFlags(command: Command): Command {
  return command
    .option('--warmup-steps <n>', 'raise the learning rate linearly from 0 over the first n steps', '0')
    .option(
      '--lr-schedule <constant|linear|cosine>',
      'after the warmup: keep --lr, or decay it linearly or by a cosine to 0 at the last step',
      'constant',
    )
    .option('--weight-decay <x>', 'decoupled AdamW weight decay', '0')
    .option(
      '--max-grad-norm <x>',
      'clip the global gradient norm to x (0: off); lsp clips the norm of what it steps: the compressed ' +
        'gradients of the projected layers and the dense ones of the rest',
      '0',
    )
    .option(
      '--grad-accum <n>',
      'micro-batches of --batch sequences per optimizer step (their mean gradient): a larger effective batch in the same memory',
      '1',
    )
    .option('--export-dtype <f32|f16|bf16>', "--export's weight dtype (default: the input checkpoint's)")
    .option('--log-every <n>', 'without a progress bar (or stderr not a terminal): a line every n steps', '1')
    .option(
      '--invalid-lines <error|skip>',
      'invalid data lines stop the run, or are left out and counted',
      'error',
    )
    .option(
      '--eos-token <token|id>',
      "the token ending every example (default: the tokenizer's eos_token, else config.json's eos_token_id)",
    );
}

function nonNegative(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number >= 0, got '${v}'`);
  return n;
}

/** The trainer options the flags set (validated; the schedule spans --steps). */
export function fineTuneOptions(f: FineTuneFlags, steps: number): Partial<TrainerOptions> {
  return {
    warmupSteps: int('warmup-steps', f.warmupSteps, 0),
    lrSchedule: oneOf<LrScheduleKind>('lr-schedule', f.lrSchedule, LR_SCHEDULES),
    totalSteps: steps,
    weightDecay: nonNegative('weight-decay', f.weightDecay),
    maxGradNorm: nonNegative('max-grad-norm', f.maxGradNorm),
    gradAccum: int('grad-accum', f.gradAccum),
  };
}

export function exportDtypeOf(f: FineTuneFlags): 'f32' | 'f16' | 'bf16' | undefined {
  return f.exportDtype === undefined
    ? undefined
    : oneOf('export-dtype', f.exportDtype, ['f32', 'f16', 'bf16'] as const);
}
