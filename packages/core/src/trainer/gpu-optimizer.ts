// Native mode's update path: dense f32 gradients kept on the GPU and AdamW run there (the unlimited-memory
// reference). The AdamW state (m, v and, for f16 weights, an f32 master copy) is created per parameter at
// its first step.
import { adamw, createAdamWState, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import { DenseGradients } from '../model/dense-gradients.js';
import type { ModelWeights } from '../model/weights.js';
import type { OptimizerHyperParams } from '../options/trainer-options.js';
import type { ModeUpdates } from './mode-updates.js';

export interface GpuAdamWState {
  m: Tensor;
  v: Tensor;
  master?: Tensor;
}

export class GpuOptimizer implements ModeUpdates {
  readonly sink: DenseGradients;
  readonly cpuBusyMs = 0;
  private readonly states = new Map<string, GpuAdamWState>();

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly weights: ModelWeights,
    private readonly hyper: OptimizerHyperParams,
  ) {
    this.sink = new DenseGradients(gpu, weights);
  }

  /** The AdamW state per parameter (created at the first step, or by ensureState). */
  get state(): ReadonlyMap<string, GpuAdamWState> {
    return this.states;
  }

  /** Create the state of every parameter now (e.g. before loading a checkpoint into it). */
  ensureState(): void {
    for (const spec of this.weights.specs) this.stateOf(spec.name);
  }

  async beforeForward(): Promise<void> {}

  async afterBlockBackward(): Promise<void> {}

  async afterBackward(step: number): Promise<void> {
    const list = [];
    for (const spec of this.weights.specs) {
      const grad = this.sink.get(spec.name);
      if (!grad) continue;
      list.push({ param: this.weights.get(spec.name), grad, ...this.stateOf(spec.name) });
    }
    const h = this.hyper;
    adamw(this.gpu, list, {
      lr: h.lr,
      beta1: h.betas[0],
      beta2: h.betas[1],
      eps: h.eps,
      weightDecay: h.weightDecay,
      step,
    });
  }

  async flush(): Promise<void> {
    await this.gpu.sync('flushing updates');
  }

  async settled(): Promise<void> {}

  async destroy(): Promise<void> {
    this.sink.release();
    for (const s of this.states.values()) for (const t of [s.m, s.v, s.master]) t?.release();
    this.states.clear();
  }

  private stateOf(name: string): GpuAdamWState {
    let state = this.states.get(name);
    if (!state) {
      const param = this.weights.get(name);
      state = createAdamWState(this.gpu, param, { master: param.dtype === 'f16' });
      this.states.set(name, state);
    }
    return state;
  }
}
