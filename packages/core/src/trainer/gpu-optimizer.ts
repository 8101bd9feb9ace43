// Native mode's update path: dense f32 gradients kept on the GPU and AdamW run there (the unlimited-memory
// reference). The AdamW state (m, v and, for f16 weights, an f32 master copy) is created per parameter at
// its first step. The step's learning rate follows the schedule; gradient accumulation and clipping scale
// the gradients inside the AdamW kernel (the clipping coefficient from the norm on the GPU, no host sync).
// A step with a non-finite gradient is skipped whole inside the kernel (the loss scaler's GPU count), as
// GradScaler skips optimizer.step(); mixed precision's loss scale is divided out there too. Bias
// correction counts the steps applied (torch's state['step'] does not advance on a skipped step).
import { adamw, createAdamWState, globalNorm, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import { DenseGradients } from '../model/dense-gradients.js';
import type { ModelWeights } from '../model/weights.js';
import type { OptimizerHyperParams } from '../options/trainer-options.js';
import type { LossScaler } from './loss-scaler.js';
import { scheduledLr, type LrScheduleOptions } from './lr-schedule.js';
import { NO_CPU_STEPS, type ModeUpdates } from './mode-updates.js';

export type GpuOptimizerOptions = OptimizerHyperParams &
  LrScheduleOptions & {
    /** Global gradient-norm clipping (0: off). */
    maxGradNorm: number;
  };

export interface GpuAdamWState {
  m: Tensor;
  v: Tensor;
  master?: Tensor;
}

export class GpuOptimizer implements ModeUpdates {
  readonly sink: DenseGradients;
  readonly cpuBusyMs = 0;
  readonly cpuStepTiming = NO_CPU_STEPS;
  private readonly states = new Map<string, GpuAdamWState>();
  private microBatches = 1;
  /** The step's gradient-sum norm on the GPU when clipping (read by gradNorm). */
  private norm: Tensor | undefined;
  /** The loss scale the measured norm carries. */
  private normScale = 1;

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly weights: ModelWeights,
    private readonly hyper: GpuOptimizerOptions,
    private readonly scaler: LossScaler,
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

  beginStep(microBatches: number): void {
    this.microBatches = microBatches;
  }

  async beforeForward(): Promise<void> {}

  async afterBlockBackward(): Promise<void> {}

  /** GPU AdamW over the mean gradient of the step's micro-batches. */
  async afterBackward(step: number): Promise<void> {
    const list = [];
    for (const spec of this.weights.specs) {
      const grad = this.sink.get(spec.name);
      if (!grad) continue;
      list.push({ param: this.weights.get(spec.name), grad, ...this.stateOf(spec.name) });
    }
    const h = this.hyper;
    // clipping: the coefficient comes from the norm on the GPU (no host sync before the step)
    const norm =
      h.maxGradNorm > 0
        ? globalNorm(
            this.gpu,
            list.map((p) => p.grad),
          )
        : undefined;
    this.norm = norm;
    this.normScale = this.scaler.scale;
    const scaler = this.scaler;
    scaler.countNonFinite(list.map((p) => p.grad));
    adamw(this.gpu, list, {
      lr: scheduledLr(h, step),
      beta1: h.betas[0],
      beta2: h.betas[1],
      eps: h.eps,
      weightDecay: h.weightDecay,
      // the steps applied so far, this one included (skipped ones are known once their step ended)
      step: step - scaler.status.skippedSteps,
      gradScale: 1 / this.microBatches,
      ...(norm && { clip: { norm, maxNorm: h.maxGradNorm } }),
      skipIfNonFinite: { count: scaler.count },
      ...(scaler.lossScale && { unscaleBy: scaler.lossScale }),
    });
    scaler.endStep();
  }

  /** The norm of the mean gradient (the norm measured is of the micro-batches' sum). */
  async gradNorm(): Promise<number | null> {
    const norm = this.norm;
    if (!norm) return null;
    this.norm = undefined;
    try {
      return (await this.gpu.read(norm))[0]! / this.microBatches / this.normScale;
    } finally {
      norm.release();
    }
  }

  failStep(): void {
    this.norm?.release();
    this.norm = undefined;
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
