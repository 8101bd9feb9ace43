// The learning rate of each optimizer step: linear warmup, then constant, linear or cosine decay to zero
// over the run, as transformers' get_{constant,linear,cosine}_schedule_with_warmup (the factor of step s,
// 1-based, is theirs at index s - 1: the first warmup step has rate 0, the full rate is reached after
// warmupSteps steps, and linear and cosine reach 0 after totalSteps).
import { LR_SCHEDULES, type LrScheduleKind } from '../options/trainer-options.js';

export interface LrScheduleOptions {
  lr: number;
  lrSchedule: LrScheduleKind;
  warmupSteps: number;
  /** The step count the decay spans (the run's length); unused by 'constant'. */
  totalSteps: number;
}

/** Throws a message naming the option unless the schedule is usable. */
export function checkLrSchedule(o: LrScheduleOptions): void {
  if (!LR_SCHEDULES.includes(o.lrSchedule))
    throw new Error(`unknown learning-rate schedule '${o.lrSchedule}': use ${LR_SCHEDULES.join(', ')}`);
  if (!(Number.isInteger(o.warmupSteps) && o.warmupSteps >= 0))
    throw new RangeError(`warmup steps must be an integer >= 0, got ${o.warmupSteps}`);
  if (o.lrSchedule !== 'constant' && !(Number.isInteger(o.totalSteps) && o.totalSteps > o.warmupSteps))
    throw new RangeError(
      `a ${o.lrSchedule} schedule needs its total steps (${o.totalSteps}) above the warmup steps (${o.warmupSteps})`,
    );
}

/** Multiplier of the base rate at optimizer step `step` (1-based). */
export function lrFactor(o: Omit<LrScheduleOptions, 'lr'>, step: number): number {
  const i = step - 1;
  const w = o.warmupSteps;
  if (i < w) return i / Math.max(1, w);
  if (o.lrSchedule === 'constant') return 1;
  const span = Math.max(1, o.totalSteps - w);
  if (o.lrSchedule === 'linear') return Math.max(0, (o.totalSteps - i) / span);
  const progress = (i - w) / span;
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** The learning rate of optimizer step `step` (1-based). */
export function scheduledLr(o: LrScheduleOptions, step: number): number {
  return o.lr * lrFactor(o, step);
}
