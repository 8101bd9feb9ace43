// Sizes as people write them: 4GiB, 512MiB, 24GB, 1.5G, 1000000 (bytes).
const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  KB: 1e3,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1e6,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1e9,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1e12,
  TIB: 1024 ** 4,
};

export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`'${text}' is not a size (examples: 4GiB, 512MiB, 24GB)`);
  return Math.round(Number(m[1]) * unit);
}

/** A byte count as a size flag value: the largest binary unit that divides it (4194304 -> 4MiB). */
export function sizeText(bytes: number): string {
  for (const [unit, scale] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const)
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale}${unit}`;
  return String(bytes);
}
