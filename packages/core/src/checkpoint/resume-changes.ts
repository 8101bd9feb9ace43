// What a resumed run may change: the optimizer's schedule and knobs (the learning rate above all, the
// usual answer to a divergence) and the projector check interval. Everything else defines the saved
// state (mode, projectors, data geometry, dtype) and must stay as saved.
import type { TrainerOptions } from '../options/trainer-options.js';
import { CheckpointError } from './errors.js';

/** Trainer options a resume may change (they act from the next step on). */
export const RESUMABLE_OPTIONS = [
  'lr',
  'lrSchedule',
  'warmupSteps',
  'totalSteps',
  'weightDecay',
  'maxGradNorm',
] as const satisfies readonly (keyof TrainerOptions)[];

export type ResumeChanges = Partial<Pick<TrainerOptions, (typeof RESUMABLE_OPTIONS)[number]>> & {
  /** The projector checks' interval and threshold (refits must have been on, with the same sharing). */
  readonly refit?: { readonly checkFreq: number; readonly alpha: number; readonly sharing?: string };
};

/** The saved options with `changes` applied; refuses a change of what refits are (on/off, sharing). */
export function applyResumeChanges(
  manifestPath: string,
  saved: TrainerOptions,
  changes: ResumeChanges = {},
): TrainerOptions {
  const out: TrainerOptions = { ...saved };
  for (const key of RESUMABLE_OPTIONS)
    if (changes[key] !== undefined) Object.assign(out, { [key]: changes[key] });
  if (changes.refit) {
    if (!saved.refit)
      throw new CheckpointError(manifestPath, 'saved without projector refits: a resume cannot turn them on');
    if (changes.refit.sharing !== undefined && changes.refit.sharing !== saved.refit.sharing)
      throw new CheckpointError(
        manifestPath,
        `saved with refit sharing '${saved.refit.sharing}': a resume cannot change it`,
      );
    out.refit = { ...saved.refit, checkFreq: changes.refit.checkFreq, alpha: changes.refit.alpha };
  }
  return out;
}
