// Splits a list of ranges (tensor segments, in order) into contiguous shares for N workers. Cuts fall
// on `granule`-element boundaries from each item's start, so every share starts on a cache line and an
// element's result cannot depend on where the cut fell.

export interface Piece {
  /** Index into the item list. */
  item: number;
  start: number;
  length: number;
}

/**
 * Cut the concatenation of `lengths` into `parts` nearly equal contiguous shares. Returns one piece
 * list per share, in order; shares may be empty when there is too little work.
 */
export function partition(lengths: readonly number[], parts: number, granule: number): Piece[][] {
  const prefix = [0];
  for (const n of lengths) prefix.push(prefix[prefix.length - 1]! + n);
  const total = prefix[prefix.length - 1]!;
  const cuts = [0];
  let item = 0;
  for (let w = 1; w < parts; w++) {
    const ideal = (total * w) / parts;
    while (item < lengths.length - 1 && prefix[item + 1]! <= ideal) item++;
    const len = lengths[item] ?? 0;
    const local = Math.min(len, Math.round((ideal - prefix[item]!) / granule) * granule);
    cuts.push(Math.max(cuts[cuts.length - 1]!, prefix[item]! + local));
  }
  cuts.push(total);
  const shares: Piece[][] = [];
  for (let w = 0; w < parts; w++) shares.push(slice(lengths, prefix, cuts[w]!, cuts[w + 1]!));
  return shares;
}

/** The pieces covering [from, to) of the concatenation. */
function slice(lengths: readonly number[], prefix: readonly number[], from: number, to: number): Piece[] {
  const out: Piece[] = [];
  for (let i = 0; i < lengths.length && from < to; i++) {
    const lo = Math.max(from, prefix[i]!);
    const hi = Math.min(to, prefix[i + 1]!);
    if (hi > lo) out.push({ item: i, start: lo - prefix[i]!, length: hi - lo });
  }
  return out;
}

/** Split each piece into chunks of at most `block` elements aligned to `block` from the item start. */
export function splitBlocks(pieces: readonly Piece[], block: number): Piece[] {
  const out: Piece[] = [];
  for (const p of pieces) {
    let s = p.start;
    const end = p.start + p.length;
    while (s < end) {
      const e = Math.min(end, (Math.floor(s / block) + 1) * block);
      out.push({ item: p.item, start: s, length: e - s });
      s = e;
    }
  }
  return out;
}
