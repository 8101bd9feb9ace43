// The model's parameters on the GPU, by Hugging Face name, stored f32 or f16 (activations are f32).
import type { GpuRuntime, Tensor } from '@lsp-offload/gpu-dawn';
import { fillNormal } from '@lsp-offload/gpu-dawn';
import { listParameters, type HfModel, type ModelConfig, type ParameterSpec } from '../hf/index.js';
import type { Rng } from '../util/rng.js';
import {
  resolveParameters,
  type BlockParameters,
  type OuterParameters,
  type ResolvedModelParameters,
} from './block-parameters.js';

export type WeightDtype = 'f32' | 'f16';

export class ModelWeights {
  private readonly specByName: ReadonlyMap<string, ParameterSpec>;
  private resolved: ResolvedModelParameters | undefined;

  private constructor(
    readonly config: ModelConfig,
    readonly specs: readonly ParameterSpec[],
    readonly dtype: WeightDtype,
    private readonly tensors: Map<string, Tensor>,
  ) {
    this.specByName = new Map(specs.map((s) => [s.name, s]));
  }

  /** Upload a checkpoint's weights, one tensor at a time (never the whole checkpoint in host memory). */
  static async load(
    gpu: GpuRuntime,
    model: HfModel,
    dtype: WeightDtype,
    onProgress?: (done: number, total: number, name: string) => void,
  ): Promise<ModelWeights> {
    const tensors = new Map<string, Tensor>();
    const specs = model.parameters;
    try {
      for (const [i, spec] of specs.entries()) {
        const data =
          dtype === 'f16'
            ? (await model.weights.readFloat16(spec.name)).data
            : (await model.weights.readFloat32(spec.name)).data;
        tensors.set(spec.name, gpu.upload(spec.name, dtype, spec.shape, data, 'weights'));
        onProgress?.(i + 1, specs.length, spec.name);
      }
    } catch (e) {
      for (const t of tensors.values()) t.release();
      throw e;
    }
    return new ModelWeights(model.config, specs, dtype, tensors);
  }

  /**
   * Random initialisation like transformers' _init_weights: linears and embeddings N(0, std), norms 1,
   * biases 0 (for the demo and benchmarks; no checkpoint needed). Sampled on the GPU: a billion
   * parameters take milliseconds, not the minutes host-side sampling would.
   */
  static random(
    gpu: GpuRuntime,
    config: ModelConfig,
    dtype: WeightDtype,
    rng: Rng,
    std = 0.02,
  ): ModelWeights {
    const specs = listParameters(config);
    const tensors = new Map<string, Tensor>();
    const one = dtype === 'f16' ? 0x3c003c00 : 0x3f800000;
    for (const spec of specs) {
      const t = gpu.tensor(spec.name, dtype, spec.shape, 'weights');
      if (spec.role === 'norm') gpu.fill32(t, one);
      else if (spec.role === 'bias') gpu.fill32(t, 0);
      else fillNormal(gpu, t, { seed: rng.nextU32(), std });
      tensors.set(spec.name, t);
    }
    gpu.submit();
    return new ModelWeights(config, specs, dtype, tensors);
  }

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`model has no parameter '${name}'`);
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  spec(name: string): ParameterSpec {
    const s = this.specByName.get(name);
    if (!s) throw new Error(`model has no parameter '${name}'`);
    return s;
  }

  /** Block `layer`'s linears and norms (resolved once, from the parameter list). */
  block(layer: number): BlockParameters {
    const b = this.resolve().blocks[layer];
    if (!b) throw new Error(`model has no block ${layer} (it has ${this.config.numLayers})`);
    return b;
  }

  /** The embeddings, final norm and LM head. */
  get outer(): OuterParameters {
    return this.resolve().outer;
  }

  private resolve(): ResolvedModelParameters {
    this.resolved ??= resolveParameters(this.specs, this.config.numLayers, (name) => this.get(name));
    return this.resolved;
  }

  /** Download every parameter as f32 (export, checkpoints, tests). */
  async readAll(gpu: GpuRuntime): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const spec of this.specs) out.set(spec.name, (await gpu.read(this.get(spec.name))) as Float32Array);
    return out;
  }

  get totalBytes(): number {
    let b = 0;
    for (const t of this.tensors.values()) b += t.byteLength;
    return b;
  }

  release(): void {
    for (const t of this.tensors.values()) t.release();
    this.tensors.clear();
  }
}
