// The subspace size d of lsp against the model's layers. A projector maps a layer side of n onto d
// dimensions: d above both sides of a layer only makes its compressed gradient larger than the layer, so
// such a rank is refused, naming the layer and the largest rank allowed; d above one side (the demo's
// d = 64 on its 32-row k/v projections) works but is noted.
import { listParameters, type ModelConfig } from '../hf/index.js';

interface Limit {
  rank: number;
  layer: string;
  shape: readonly number[];
}

function smallestSide(config: ModelConfig, side: (shape: readonly number[]) => number): Limit {
  let best: Limit = { rank: Infinity, layer: '', shape: [] };
  for (const spec of listParameters(config)) {
    if (spec.role !== 'linear') continue;
    const n = side(spec.shape);
    if (n < best.rank) best = { rank: n, layer: spec.name, shape: spec.shape };
  }
  return best;
}

/** The largest d the model allows: the smallest over projected layers of the larger side. */
export function maxRank(config: ModelConfig): Limit {
  return smallestSide(config, (s) => Math.max(...s));
}

/** Why `rank` is refused for this model, or undefined when it is allowed. */
export function rankProblem(config: ModelConfig, rank: number): string | undefined {
  const limit = maxRank(config);
  if (rank <= limit.rank) return undefined;
  return (
    `--rank ${rank} exceeds both sides of ${limit.layer} [${limit.shape.join(' x ')}]: its compressed ` +
    `gradient would be larger than the layer; use --rank <= ${limit.rank}`
  );
}

/** A note when `rank` exceeds one side of some layer (allowed, but more numbers than that side). */
export function rankNote(config: ModelConfig, rank: number): string | undefined {
  const side = smallestSide(config, (s) => Math.min(...s));
  if (rank <= side.rank || rankProblem(config, rank)) return undefined;
  return `note: --rank ${rank} exceeds the smaller side (${side.rank}) of ${side.layer} [${side.shape.join(' x ')}]`;
}
