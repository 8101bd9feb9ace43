// Shared by the projector tests: seeded gradients and error measures.
import { Rng } from '../../src/util/rng.js';

/** A dense rows x cols gradient with standard normal entries. */
export function randomGradient(rng: Rng, rows: number, cols: number): Float64Array {
  return Float64Array.from({ length: rows * cols }, () => rng.normal());
}

/** A gradient of rank <= rank (sum of outer products), like X^T dY over `rank` tokens. */
export function lowRankGradient(rng: Rng, rows: number, cols: number, rank: number): Float64Array {
  const g = new Float64Array(rows * cols);
  for (let t = 0; t < rank; t++) {
    const a = Float64Array.from({ length: rows }, () => rng.normal());
    const b = Float64Array.from({ length: cols }, () => rng.normal());
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) g[i * cols + j]! += a[i]! * b[j]!;
  }
  return g;
}

/** max |got - want| / max |want|. */
export function maxRelativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  return worst / (scale || 1);
}
