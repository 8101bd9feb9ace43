// Summaries of per-step measurements.

/** Arithmetic mean (0 for no values). */
export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

/** The upper median (NaN for no values). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/**
 * The largest value (`empty` for none) by a loop: Math.max(...xs) passes every value as an argument and
 * overflows the stack past ~100k of them (a model with 10000 layers, a run of 200k steps).
 */
export function maxOf(xs: Iterable<number>, empty = -Infinity): number {
  let out: number | undefined;
  for (const x of xs) out = out === undefined ? x : Math.max(out, x);
  return out ?? empty;
}

/** The smallest value (`empty` for none); see maxOf. */
export function minOf(xs: Iterable<number>, empty = Infinity): number {
  let out: number | undefined;
  for (const x of xs) out = out === undefined ? x : Math.min(out, x);
  return out ?? empty;
}
