// Choosing the next token from its logits, as transformers' generate does: greedy (argmax, the first of
// equal maxima) or sampling after temperature, top-k (ties with the k-th value kept) and top-p (drop the
// least likely tokens whose cumulative probability is at most 1 - top_p, keeping at least one), in that
// order. Probabilities in float64.
import { argmax } from '../data/answer-accuracy.js';

export interface SamplingOptions {
  /** 0: greedy decoding; otherwise logits are divided by it before sampling. */
  readonly temperature: number;
  /** Keep only the k most likely tokens (0: all). */
  readonly topK: number;
  /** Keep the most likely tokens that together reach this probability (1: all). */
  readonly topP: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1 };

/** Throws a message naming the option unless the values are usable. */
export function checkSamplingOptions(o: SamplingOptions): void {
  if (!(Number.isFinite(o.temperature) && o.temperature >= 0))
    throw new RangeError(`temperature must be a number >= 0 (0: greedy), got ${o.temperature}`);
  if (!(Number.isInteger(o.topK) && o.topK >= 0))
    throw new RangeError(`top-k must be an integer >= 0 (0: off), got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new RangeError(`top-p must be in (0, 1] (1: off), got ${o.topP}`);
}

/** The distribution sampling draws from: zero for filtered tokens, summing to 1. */
export function samplingProbabilities(logits: ArrayLike<number>, o: SamplingOptions): Float64Array {
  const n = logits.length;
  const scaled = Float64Array.from(logits, (x) => x / o.temperature);
  const keep = new Uint8Array(n).fill(1);
  if (o.topK > 0 && o.topK < n) {
    const kth = Float64Array.from(scaled).sort()[n - o.topK]!;
    for (let i = 0; i < n; i++) if (scaled[i]! < kth) keep[i] = 0;
  }
  const probs = softmaxOfKept(scaled, keep);
  if (o.topP < 1) {
    // ascending by probability, ties by index, so the dropped tail is deterministic
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[a]! - probs[b]! || b - a);
    let cumulative = 0;
    for (const [rank, i] of order.entries()) {
      cumulative += probs[i]!;
      if (cumulative > 1 - o.topP || rank === n - 1) break;
      keep[i] = 0;
    }
    return softmaxOfKept(scaled, keep);
  }
  return probs;
}

function softmaxOfKept(scaled: Float64Array, keep: Uint8Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scaled.length; i++) if (keep[i] && scaled[i]! > max) max = scaled[i]!;
  const out = new Float64Array(scaled.length);
  let sum = 0;
  for (let i = 0; i < scaled.length; i++) if (keep[i]) sum += out[i] = Math.exp(scaled[i]! - max);
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / sum;
  return out;
}

/** The next token: argmax when greedy, else the token where `uniform` (in [0, 1)) falls in the distribution. */
export function chooseToken(logits: ArrayLike<number>, o: SamplingOptions, uniform: () => number): number {
  if (o.temperature === 0) return argmax(logits, 0, logits.length);
  const probs = samplingProbabilities(logits, o);
  const u = uniform();
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    last = i;
    cumulative += probs[i]!;
    if (u < cumulative) return i;
  }
  return last; // u beyond the rounded total
}
