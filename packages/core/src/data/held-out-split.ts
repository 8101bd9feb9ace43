// A held-out split of the examples (for evaluation and projector refits), chosen by the seed alone, so
// a resumed run or another mode on the same data and seed holds out exactly the same examples.
import { Rng } from '../util/rng.js';
import { DataFormatError } from './errors.js';
import { DATA_RNG_STREAMS } from './rng-streams.js';

/**
 * A fraction of the examples (rounded, at least 1, at most `max`, and always leaving one to train on)
 * or an exact count (refused when it leaves none).
 */
export type HeldOutSize = { readonly fraction: number; readonly max?: number } | { readonly count: number };

/** 5 % of the examples, at most 1000: enough for evaluation and refits, not a large cut of big data. */
export const DEFAULT_HELD_OUT: HeldOutSize = { fraction: 0.05, max: 1000 };

export interface HeldOutSplit {
  /** Example indices, ascending (the source order). */
  readonly train: readonly number[];
  readonly heldOut: readonly number[];
}

export function heldOutCount(total: number, size: HeldOutSize): number {
  let count: number;
  if ('count' in size) {
    if (!Number.isInteger(size.count) || size.count < 0)
      throw new RangeError(`held-out count ${size.count} is not a non-negative integer`);
    count = size.count;
  } else {
    if (!(size.fraction >= 0 && size.fraction < 1))
      throw new RangeError(`held-out fraction ${size.fraction} is not in [0, 1)`);
    count = size.fraction === 0 ? 0 : Math.max(1, Math.round(total * size.fraction));
    if (size.max !== undefined) count = Math.min(count, size.max);
    count = Math.min(count, Math.max(0, total - 1));
  }
  if (count > 0 && count >= total)
    throw new DataFormatError(
      `holding out ${count} of ${total} examples leaves none to train on; give more data or a smaller held-out split`,
    );
  return count;
}

export function splitHeldOut(total: number, size: HeldOutSize, seed: number): HeldOutSplit {
  const count = heldOutCount(total, size);
  // A partial Fisher-Yates shuffle draws `count` distinct indices uniformly.
  const rng = new Rng(seed, DATA_RNG_STREAMS.heldOutSplit);
  const order = Array.from({ length: total }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + rng.below(total - i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const isHeldOut = new Uint8Array(total);
  for (let i = 0; i < count; i++) isHeldOut[order[i]!] = 1;
  const train: number[] = [];
  const heldOut: number[] = [];
  for (let i = 0; i < total; i++) (isHeldOut[i] ? heldOut : train).push(i);
  return { train, heldOut };
}
