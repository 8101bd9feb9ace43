// A gradient sink that keeps every wanted gradient densely on the GPU in f32, named by HF parameter name:
// the native (unlimited-memory) mode's gradients, and `lsp-offload grads`.
import type { GpuRuntime, Tensor } from '@lsp-offload/gpu-dawn';
import type { LinearWeightSpec, ParameterSpec } from '../hf/index.js';
import type { GradientSink, GradTarget } from './gradient-sink.js';
import { linearWeightGradient } from './linear.js';
import type { ModelWeights } from './weights.js';

export class DenseGradients implements GradientSink {
  private readonly grads = new Map<string, Tensor>();
  /** Add into existing gradients (micro-batch accumulation) instead of overwriting them. */
  accumulate = false;
  /** The micro-batch being recorded (unused: dense gradients add up whatever the micro-batch). */
  microBatch = 0;

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly weights: ModelWeights,
    private readonly trainable: (spec: ParameterSpec) => boolean = () => true,
  ) {}

  wants(spec: ParameterSpec): boolean {
    return this.trainable(spec);
  }

  linear(spec: LinearWeightSpec, x: Tensor, dy: Tensor): void {
    linearWeightGradient(this.gpu, spec, x, dy, this.grad(spec), this.accumulate);
  }

  gradTarget(spec: ParameterSpec): GradTarget {
    return { tensor: this.grad(spec), accumulate: this.accumulate };
  }

  /** The gradient tensor of a parameter (allocated on first use, f32, shaped like the parameter). */
  grad(spec: ParameterSpec): Tensor {
    let g = this.grads.get(spec.name);
    if (!g) {
      g = this.gpu.tensor(`grad.${spec.name}`, 'f32', spec.shape, 'gradients');
      this.grads.set(spec.name, g);
    }
    return g;
  }

  get(name: string): Tensor | undefined {
    return this.grads.get(name);
  }

  entries(): IterableIterator<[string, Tensor]> {
    return this.grads.entries();
  }

  /** Download every gradient, in the model's parameter order. */
  async readAll(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const spec of this.weights.specs) {
      const g = this.grads.get(spec.name);
      if (g) out.set(spec.name, (await this.gpu.read(g)) as Float32Array);
    }
    return out;
  }

  release(): void {
    for (const g of this.grads.values()) g.release();
    this.grads.clear();
  }
}
