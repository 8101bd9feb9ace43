// The factor every gradient of one optimizer step is multiplied by before AdamW: 1 / micro-batches (the
// mean over gradient accumulation), times the global-norm clipping coefficient when clipping is on, over
// the loss scale the gradients carry (mixed precision; 1 in f32). The
// offloading modes measure the norm on the GPU, unit by unit as each unit's gradients are handed over
// (a sum of squares per unit), and their CPU steps wait for the factor until the whole backward is done.
import { reduce, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';

/** torch.nn.utils.clip_grad_norm_'s coefficient: min(1, max / (norm + 1e-6)); 1 for a non-finite norm. */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!Number.isFinite(norm)) return 1; // the optimizer's non-finite check decides about such a step
  return Math.min(1, maxNorm / (norm + 1e-6));
}

export class StepGradScale {
  /** Resolves to the factor once every unit's gradients are in (at once without clipping). */
  readonly factor: Promise<number>;
  /** The global norm of the mean gradient, once measured (clipping only). */
  norm: number | null = null;
  private settle!: (factor: number) => void;
  private abort!: (e: unknown) => void;
  private readonly sumSquares: Tensor | undefined;
  private units = 0;
  private finished = false;

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly microBatches: number,
    private readonly maxGradNorm: number,
    unitCapacity: number,
    private readonly lossScale = 1,
  ) {
    this.factor = new Promise<number>((resolve, reject) => {
      this.settle = resolve;
      this.abort = reject;
    });
    this.factor.catch(() => undefined); // surfaced by whoever awaits it
    if (maxGradNorm > 0) {
      this.sumSquares = gpu.tensor('gradients.sumOfSquares', 'f32', [unitCapacity], 'workspace');
      gpu.fill32(this.sumSquares, 0);
    } else {
      this.settle(1 / (microBatches * lossScale));
    }
  }

  /** Record the sum of squares of one unit's gradients (before they travel and are released). */
  addUnit(gradients: readonly Tensor[]): void {
    if (!this.sumSquares || gradients.length === 0) return;
    reduce(this.gpu, 'sumOfSquares', gradients, { out: this.sumSquares, outIndex: this.units++ });
  }

  /** Every unit is in: read the norm (waits for the GPU) and release the factor. */
  async finish(): Promise<void> {
    if (!this.sumSquares) return;
    this.finished = true;
    try {
      const sums = await this.gpu.read(this.sumSquares);
      let total = 0;
      for (let i = 0; i < this.units; i++) total += sums[i]!;
      this.norm = Math.sqrt(total) / this.microBatches / this.lossScale;
      this.settle(clipCoefficient(this.norm, this.maxGradNorm) / (this.microBatches * this.lossScale));
    } catch (e) {
      this.abort(e);
      throw e;
    } finally {
      this.sumSquares.release();
    }
  }

  /** The step failed: CPU steps waiting for the factor fail too instead of waiting forever. */
  fail(e: unknown): void {
    this.abort(e);
    if (this.sumSquares && !this.finished) this.sumSquares.release();
    this.finished = true;
  }
}
