// Adam over a small float64 parameter vector on the host, and the cosine learning-rate schedule. Used to
// learn projector values: (rows + cols) x r numbers per pair, far too few to be worth a GPU optimizer.

export interface AdamSettings {
  beta1: number;
  beta2: number;
  eps: number;
}

export const DEFAULT_ADAM: AdamSettings = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

export class HostAdam {
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  /** Steps taken (bias correction). */
  step = 0;

  constructor(
    readonly size: number,
    private readonly settings: AdamSettings = DEFAULT_ADAM,
  ) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }

  /** params -= lr * mhat / (sqrt(vhat) + eps), standard form with bias correction. */
  update(params: Float64Array, grad: ArrayLike<number>, lr: number): void {
    if (params.length !== this.size || grad.length !== this.size)
      throw new Error(`HostAdam: ${params.length} params and ${grad.length} gradients, want ${this.size}`);
    const { beta1, beta2, eps } = this.settings;
    this.step++;
    const c1 = 1 - beta1 ** this.step;
    const c2 = 1 - beta2 ** this.step;
    for (let i = 0; i < this.size; i++) {
      const gi = grad[i]!;
      this.m[i] = beta1 * this.m[i]! + (1 - beta1) * gi;
      this.v[i] = beta2 * this.v[i]! + (1 - beta2) * gi * gi;
      params[i]! -= (lr * (this.m[i]! / c1)) / (Math.sqrt(this.v[i]! / c2) + eps);
    }
  }
}

/** base * (1 + cos(pi * step / total)) / 2: from base at step 0 towards 0 at step total. */
export function cosineLearningRate(base: number, step: number, total: number): number {
  if (total <= 0) return base;
  return (base * (1 + Math.cos((Math.PI * Math.min(step, total)) / total))) / 2;
}
