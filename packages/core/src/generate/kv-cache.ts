// The key/value cache of generation: per layer, the keys and values of every position so far, on the GPU
// (f32, [capacity, kv heads, head_dim]), so each new token runs through the model alone.
import { appendToCache, cachedAttention, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import type { ModelConfig } from '../hf/index.js';
import type { AttentionCache } from '../model/block-context.js';

export class KvCache implements AttentionCache {
  private position = 0;
  private readonly keys: Tensor[] = [];
  private readonly values: Tensor[] = [];

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly config: ModelConfig,
    /** Positions the cache holds (prompt + new tokens, at most the model's positions). */
    readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > config.maxPositions)
      throw new Error(
        `a KV cache of ${capacity} positions: need 1 .. ${config.maxPositions} (the model's positions)`,
      );
    const shape = [capacity, config.numKeyValueHeads, config.headDim];
    for (let l = 0; l < config.numLayers; l++) {
      this.keys.push(gpu.tensor(`kv.${l}.k`, 'f32', shape, 'activations'));
      this.values.push(gpu.tensor(`kv.${l}.v`, 'f32', shape, 'activations'));
    }
  }

  /** Positions already cached (the next token's position). */
  get past(): number {
    return this.position;
  }

  /** Room left for more positions. */
  get free(): number {
    return this.capacity - this.position;
  }

  attend(layer: number, q: Tensor, k: Tensor, v: Tensor, o: Tensor): void {
    const c = this.config;
    const rows = q.numel / (c.numHeads * c.headDim);
    const kvShape = [rows, c.numKeyValueHeads, c.headDim];
    appendToCache(this.gpu, this.keys[layer]!, k.view(kvShape), this.position);
    appendToCache(this.gpu, this.values[layer]!, v.view(kvShape), this.position);
    const heads = [rows, c.numHeads, c.headDim];
    cachedAttention(this.gpu, {
      q: q.view(heads),
      kCache: this.keys[layer]!,
      vCache: this.values[layer]!,
      o: o.view(heads),
      past: this.position,
    });
  }

  /** The rows just run are now cached. */
  advance(rows: number): void {
    if (this.position + rows > this.capacity)
      throw new Error(`KV cache overflow: ${this.position + rows} positions, capacity ${this.capacity}`);
    this.position += rows;
  }

  release(): void {
    for (const t of [...this.keys, ...this.values]) t.release();
    this.keys.length = 0;
    this.values.length = 0;
  }
}
