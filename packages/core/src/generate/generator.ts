// Text generation with a KV cache on the GPU: the prompt runs through the model once (prefill), then each
// new token alone, attending to the cached keys and values; the next token is chosen on the host from the
// last position's logits (greedy, or sampled after temperature / top-k / top-p). Stops at a stop token
// (included in the output, as transformers' generate does), after maxNewTokens, or when the model's
// positions run out.
import type { Transformer } from '../model/transformer.js';
import { Rng } from '../util/rng.js';
import { KvCache } from './kv-cache.js';
import { checkSamplingOptions, chooseToken, type SamplingOptions } from './sampler.js';

export interface GenerateOptions extends SamplingOptions {
  readonly maxNewTokens: number;
  /** Generation ends after any of these (usually the EOS ids). */
  readonly stopTokenIds: readonly number[];
  /** Seed of the sampling generator (unused when greedy). */
  readonly seed: number;
  /** Called with each new token as soon as it is chosen (streaming). */
  onToken?(id: number): void | Promise<void>;
}

export interface GenerateResult {
  /** The new tokens (a final stop token included). */
  readonly tokens: number[];
  readonly stoppedBy: 'stop token' | 'max new tokens' | 'model positions';
  /** Prompt through the model and the first token chosen. */
  readonly prefillMs: number;
  /** Every later token. */
  readonly decodeMs: number;
  /** Tokens after the first per second of decodeMs (the cached decoding rate); NaN for one token. */
  readonly decodeTokensPerSecond: number;
}

export async function generateTokens(
  model: Transformer,
  prompt: readonly number[],
  o: GenerateOptions,
): Promise<GenerateResult> {
  checkSamplingOptions(o);
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 1))
    throw new RangeError(`max new tokens must be an integer >= 1, got ${o.maxNewTokens}`);
  const config = model.config;
  if (prompt.length === 0) throw new Error('the prompt has no tokens');
  if (prompt.length >= config.maxPositions)
    throw new Error(
      `the prompt has ${prompt.length} tokens; the model has ${config.maxPositions} positions, leaving none to generate`,
    );
  const stop = new Set(o.stopTokenIds);
  const rng = new Rng(o.seed, 11);
  const cache = new KvCache(model.gpu, config, Math.min(config.maxPositions, prompt.length + o.maxNewTokens));
  const tokens: number[] = [];
  const t0 = performance.now();
  let firstAt = t0;
  let stoppedBy: GenerateResult['stoppedBy'] = 'max new tokens';
  try {
    let input = Int32Array.from(prompt);
    for (;;) {
      const logits = await model.nextTokenLogits(input, cache);
      cache.advance(input.length);
      const values = (await model.gpu.read(logits)) as Float32Array;
      logits.release();
      const next = chooseToken(values, o, () => rng.next());
      tokens.push(next);
      if (tokens.length === 1) firstAt = performance.now();
      await o.onToken?.(next);
      if (stop.has(next)) {
        stoppedBy = 'stop token';
        break;
      }
      if (tokens.length === o.maxNewTokens) break;
      // the whole sequence stays within the model's positions, as transformers' max_length does
      if (prompt.length + tokens.length === config.maxPositions) {
        stoppedBy = 'model positions';
        break;
      }
      input = Int32Array.of(next);
    }
  } finally {
    cache.release();
  }
  const decodeMs = performance.now() - firstAt;
  return {
    tokens,
    stoppedBy,
    prefillMs: firstAt - t0,
    decodeMs,
    decodeTokensPerSecond: tokens.length > 1 ? ((tokens.length - 1) / decodeMs) * 1000 : NaN,
  };
}
