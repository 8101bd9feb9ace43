// A step's guard against non-finite gradients and, in mixed precision, the dynamic loss scale. Both live
// on the GPU: the gradients' non-finite values are counted there as the backward hands them over, the
// optimizer skips on that count (native: the whole step, in the AdamW kernel; the offloading modes: each
// update unit whose own count, in its wire header, is non-zero: layerwise-schedule.ts), and the scale follows torch's
// GradScaler (x0.5 and a skipped step on overflow, x2 after growthInterval clean steps; gpu-dawn's
// updateLossScale), recorded after the backward. The host learns the outcome when the step ends, in the
// same wait as the loss (one small readback of scale, counters and count): the metrics, the bias
// correction of the next native step, and the scale the next step's CPU updates divide out.
import {
  createLossScaleState,
  nonFiniteCount,
  updateLossScale,
  type GpuRuntime,
  type GpuScalar,
  type LossScaleState,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import type { Precision } from '../model/precision.js';
import { DEFAULT_TRAINER_OPTIONS, type LossScaleOptions } from '../options/trainer-options.js';

/** Where loss scaling stands after a step (what checkpoints save and metrics report). */
export interface LossScaleStatus {
  /** The scale the next step's loss gradient is multiplied by (1 in f32). */
  scale: number;
  /** Clean steps since the scale last changed (GradScaler's growth tracker). */
  growthTracker: number;
  /** Steps with a non-finite gradient so far (native skipped them whole, the offloading modes per unit). */
  skippedSteps: number;
}

export class LossScaler {
  /** u32 [1]: non-finite values among the step's gradients, summed on the GPU. */
  readonly count: Tensor;
  private readonly state: LossScaleState | undefined;
  /** u32 [4] snapshot [scale bits, growth tracker, skipped steps, count], read in one go after a step. */
  private readonly snapshot: Tensor;
  private current: LossScaleStatus;
  /** Whether the last finished step found a non-finite gradient. */
  lastStepSkipped = false;

  constructor(
    private readonly gpu: GpuRuntime,
    readonly precision: Precision,
    private readonly settings: LossScaleOptions = DEFAULT_TRAINER_OPTIONS.lossScale,
  ) {
    this.count = gpu.tensor('gradients.nonFiniteCount', 'u32', [1], 'optimizer');
    gpu.fill32(this.count, 0);
    this.snapshot = gpu.tensor('lossScale.snapshot', 'u32', [4], 'optimizer');
    const scale = precision === 'mixed' ? settings.initScale : 1;
    if (precision === 'mixed') this.state = createLossScaleState(gpu, { initScale: scale });
    this.current = { scale, growthTracker: 0, skippedSteps: 0 };
  }

  /** The GPU scalar the backward multiplies the loss gradient by (mixed precision only). */
  get lossScale(): GpuScalar | undefined {
    return this.state && { tensor: this.state.scale };
  }

  /** The loss scale of the step in progress, on the host. */
  get scale(): number {
    return this.current.scale;
  }

  get status(): LossScaleStatus {
    return { ...this.current };
  }

  /** A step begins: a fresh count (a queue write, ordered after everything recorded so far). */
  beginStep(): void {
    this.gpu.fill32(this.count, 0);
  }

  /** Add the non-finite values of `gradients` to the step's count (before they travel or are stepped). */
  countNonFinite(gradients: readonly Tensor[]): void {
    if (gradients.length) nonFiniteCount(this.gpu, gradients, { out: this.count, accumulate: true });
  }

  /**
   * Every gradient of the step is counted and its optimizer reads are recorded: update the scale
   * (mixed) and snapshot everything the host reads at the step's end.
   */
  endStep(): void {
    if (this.state)
      updateLossScale(
        this.gpu,
        this.state,
        { tensor: this.count },
        { growthInterval: this.settings.growthInterval, clearCount: false },
      );
    const enc = this.gpu.commandEncoder();
    const dst = this.snapshot.buffer;
    const at = this.snapshot.byteOffset;
    if (this.state) {
      enc.copyBufferToBuffer(this.state.scale.buffer, this.state.scale.byteOffset, dst, at, 4);
      enc.copyBufferToBuffer(this.state.counters.buffer, this.state.counters.byteOffset, dst, at + 4, 8);
    }
    enc.copyBufferToBuffer(this.count.buffer, this.count.byteOffset, dst, at + 12, 4);
  }

  /** Read what the step decided (waits for the GPU to reach the end of the step). */
  async finishStep(): Promise<LossScaleStatus> {
    const words = new Uint32Array(
      await this.gpu.readBytes(this.snapshot.buffer, this.snapshot.byteOffset, 16, 'loss scale'),
    );
    this.lastStepSkipped = words[3]! !== 0;
    if (this.state) {
      const scale = new Float32Array(words.buffer, 0, 1)[0]!;
      this.current = { scale, growthTracker: words[1]!, skippedSteps: words[2]! };
    } else if (this.lastStepSkipped) {
      this.current = { ...this.current, skippedSteps: this.current.skippedSteps + 1 };
    }
    return this.status;
  }

  /** Continue from a saved status (checkpoints). */
  restore(s: LossScaleStatus): void {
    if (!(s.scale > 0 && Number.isFinite(s.scale)))
      throw new RangeError(`loss scale: a saved scale must be finite and > 0, got ${s.scale}`);
    if (this.precision === 'f32' && s.scale !== 1)
      throw new Error(
        `loss scale: an f32 run has scale 1, the saved state has ${s.scale} (a mixed-precision run)`,
      );
    this.current = { ...s };
    if (this.state) {
      this.gpu.write(this.state.scale, [s.scale]);
      this.gpu.write(this.state.counters, [s.growthTracker, s.skippedSteps]);
    }
  }

  release(): void {
    for (const t of [this.count, this.snapshot, this.state?.scale, this.state?.counters]) t?.release();
  }
}
