// `train --resume`: which flags a resumed run takes from the checkpoint and which it may change. Flags
// left out take the saved values (not the defaults); given flags that may change (the learning rate and
// its schedule, the steps, evaluation and projector-check intervals) act from the next step and are
// reported; flags that define the saved state (mode, projectors, data geometry, dtype, seed) are refused
// when they differ, naming the saved value.
import type { Command } from 'commander';
import type { ResumePoint, RunSettings } from '@lsp-offload/core';
import { flagOf, type FlagName } from './flags.js';
import { parseSize } from './size.js';
import type { TrainCommandOptions } from './train.js';

type Flags = TrainCommandOptions;

/** A flag of flags.ts's table, with what a resume does with it. */
interface ResumeFlag {
  readonly key: keyof Flags & FlagName;
  /** The saved value as the flag would be written; undefined when the checkpoint does not say. */
  readonly saved: (p: ResumePoint, settings: Partial<RunSettings>) => string | undefined;
  readonly changeable: boolean | ((p: ResumePoint) => boolean);
  /** Whether a given value equals the saved one (default: as text). */
  readonly same?: (given: string, saved: string) => boolean;
}

const sameNumber = (a: string, b: string) => Number(a) === Number(b);
const sameSize = (a: string, b: string) => parseSize(a) === parseSize(b);
const text = (v: unknown) => (v === undefined || v === null ? undefined : String(v));

const RESUME_FLAGS: readonly ResumeFlag[] = [
  { key: 'lr', saved: (p) => text(p.manifest.options.lr), changeable: true, same: sameNumber },
  {
    key: 'lrSchedule',
    saved: (p) => p.manifest.options.lrSchedule,
    changeable: true,
  },
  {
    key: 'warmupSteps',
    saved: (p) => text(p.manifest.options.warmupSteps),
    changeable: true,
    same: sameNumber,
  },
  {
    key: 'steps',
    saved: (p, s) => text(s.steps ?? p.manifest.options.totalSteps),
    changeable: true,
    same: sameNumber,
  },
  {
    key: 'weightDecay',
    saved: (p) => text(p.manifest.options.weightDecay),
    changeable: true,
    same: sameNumber,
  },
  {
    key: 'maxGradNorm',
    saved: (p) => text(p.manifest.options.maxGradNorm),
    changeable: true,
    same: sameNumber,
  },
  {
    key: 'evalEvery',
    saved: (_, s) => text(s.evalEvery),
    changeable: true,
    same: sameNumber,
  },
  {
    key: 'refitEvery',
    saved: (p) => text(p.manifest.options.refit?.checkFreq) ?? 'off',
    // the interval may change; turning checks on or off may not
    changeable: (p) => p.manifest.options.refit !== undefined,
    same: sameNumber,
  },
  {
    key: 'alpha',
    saved: (p) => text(p.manifest.options.refit?.alpha),
    changeable: true,
    same: sameNumber,
  },
  { key: 'sharing', saved: (p) => p.manifest.options.refit?.sharing, changeable: false },
  { key: 'mode', saved: (p) => p.manifest.options.mode, changeable: false },
  {
    key: 'rank',
    saved: (p) => text(p.manifest.options.rank),
    changeable: false,
    same: sameNumber,
  },
  {
    key: 'nnz',
    saved: (p) => text(p.manifest.options.nnz),
    changeable: false,
    same: sameNumber,
  },
  { key: 'dtype', saved: (p) => p.manifest.model.dtype, changeable: false },
  {
    key: 'nonProjected',
    saved: (p) => p.manifest.options.nonProjected,
    changeable: false,
  },
  {
    key: 'seed',
    saved: (p) => text(p.manifest.options.seed),
    changeable: false,
    same: sameNumber,
  },
  {
    key: 'batch',
    saved: (p, s) => text(s.batch ?? p.manifest.data?.batchSize),
    changeable: false,
    same: sameNumber,
  },
  {
    key: 'seq',
    saved: (p, s) => text(s.seqLen ?? p.manifest.data?.seqLen),
    changeable: false,
    same: sameNumber,
  },
  {
    key: 'gradAccum',
    saved: (p) => text(p.manifest.options.gradAccum),
    changeable: false,
    same: sameNumber,
  },
  {
    key: 'optimizerShard',
    saved: (p) => `${p.manifest.options.optimizerShardBytes}B`,
    changeable: false,
    same: sameSize,
  },
];

/** The options given on the command line (not defaults), by their attribute names. */
export function explicitOptions(command: Command): Set<string> {
  return new Set(
    command.options
      .map((o) => o.attributeName())
      .filter((name) => command.getOptionValueSource(name) === 'cli'),
  );
}

export interface ResumeFlagValues {
  /** The flags' values for the resumed run: the saved ones, or the given ones that may change. */
  readonly values: Partial<Flags>;
  /** "--lr changed from 0.001 to 0.0002", one per changed flag. */
  readonly changed: readonly string[];
}

/** Throws naming every given flag that cannot change and differs from the saved value. */
export function resumeFlagValues(
  point: ResumePoint,
  given: Partial<Flags>,
  explicit: ReadonlySet<string>,
): ResumeFlagValues {
  const first = point.manifest.metrics[0] as Partial<RunSettings> | undefined;
  const settings = first?.type === 'settings' ? first : {};
  const values: Partial<Flags> = {};
  const changed: string[] = [];
  const refused: string[] = [];
  for (const f of RESUME_FLAGS) {
    const saved = f.saved(point, settings);
    if (saved === undefined) continue;
    const value = given[f.key];
    // --dtype auto means "what the adapter has": the saved dtype, which the adapter had
    const asked = explicit.has(f.key) && !(f.key === 'dtype' && value === 'auto');
    if (!asked || typeof value !== 'string') {
      if (saved !== 'off') Object.assign(values, { [f.key]: saved });
      continue;
    }
    if ((f.same ?? ((a, b) => a === b))(value, saved)) continue;
    const changeable = typeof f.changeable === 'function' ? f.changeable(point) : f.changeable;
    // numbers as JavaScript prints them, like the saved ones (2e-4 is 0.0002)
    const shown = f.same === sameNumber ? String(Number(value)) : value;
    if (changeable) changed.push(`${flagOf(f.key)} changed from ${saved} to ${shown}`);
    else refused.push(`${flagOf(f.key)} ${value} (saved: ${saved})`);
  }
  if (refused.length)
    throw new Error(
      `cannot change on resume: ${refused.join(', ')}; leave them out or give the saved values ` +
        `(the checkpoint ${point.dir} was saved with them)`,
    );
  return { values, changed };
}
