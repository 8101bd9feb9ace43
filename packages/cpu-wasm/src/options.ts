// Option objects are checked by name: a misspelt option (weight_decay, maxGradnorm) would otherwise be
// ignored silently and the optimizer would run with the default.

/** Edit distance (insertions, deletions, substitutions) between two short strings. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** Case, underscores and dashes do not count: weight_decay is one step from weightDecay. */
const normalise = (name: string): string => name.toLowerCase().replace(/[_-]/g, '');

/** The valid name closest to `name`. */
export function closestName(name: string, valid: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const v of valid) {
    const d = editDistance(normalise(name), normalise(v));
    if (d < bestDistance) {
      best = v;
      bestDistance = d;
    }
  }
  return best;
}

/** The keys of an options type, complete by construction: `optionNames<T>({ a: true, b: true })`. */
export function optionNames<T>(all: Record<keyof T, true>): readonly string[] {
  return Object.keys(all);
}

/**
 * Throw a TypeError naming the first unknown option of `options` (an object or undefined), the closest
 * valid name and all valid names. `hints` replaces the suggestion for names that are valid elsewhere.
 */
export function checkOptionNames(
  options: unknown,
  valid: readonly string[],
  where: string,
  hints: Readonly<Record<string, string>> = {},
): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new TypeError(
      `${where}: options must be an object, got ${options === null ? 'null' : typeof options}`,
    );
  for (const name of Object.keys(options)) {
    if (valid.includes(name)) continue;
    const hint = hints[name] ?? `did you mean "${closestName(name, valid)}"?`;
    throw new TypeError(`${where}: unknown option "${name}": ${hint} Valid options: ${valid.join(', ')}.`);
  }
}
