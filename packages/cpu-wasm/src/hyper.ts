// AdamW hyper-parameters: validation, per-group overrides, and the per-step scalars the kernels take.
import { HYPER_STRIDE } from './protocol.js';

export interface HyperParams {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  /** Decoupled weight decay (AdamW); applied to classic params only. */
  weightDecay: number;
}

/** torch.optim.AdamW's defaults. */
export const DEFAULT_HYPER_PARAMS: HyperParams = {
  lr: 1e-3,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 0.01,
};

function finite(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** Throws a RangeError naming `where` when a value is out of range. */
export function validateHyperParams(hp: HyperParams, where: string): void {
  const bad = (what: string): never => {
    throw new RangeError(`${where}: ${what}`);
  };
  if (!finite(hp.lr) || hp.lr < 0) bad(`lr must be a finite number >= 0, got ${hp.lr}`);
  if (!Array.isArray(hp.betas) || hp.betas.length !== 2) bad(`betas must be [beta1, beta2]`);
  for (const b of hp.betas)
    if (!finite(b) || b < 0 || b >= 1) bad(`betas must lie in [0, 1), got ${hp.betas}`);
  if (!finite(hp.eps) || hp.eps <= 0) bad(`eps must be a finite number > 0, got ${hp.eps}`);
  if (!finite(hp.weightDecay) || hp.weightDecay < 0)
    bad(`weightDecay must be a finite number >= 0, got ${hp.weightDecay}`);
}

/** `base` with the defined fields of `patch`, validated. */
export function mergeHyperParams(base: HyperParams, patch: Partial<HyperParams>, where: string): HyperParams {
  const merged: HyperParams = {
    lr: patch.lr ?? base.lr,
    betas: patch.betas ? [patch.betas[0], patch.betas[1]] : base.betas,
    eps: patch.eps ?? base.eps,
    weightDecay: patch.weightDecay ?? base.weightDecay,
  };
  validateHyperParams(merged, where);
  return merged;
}

/**
 * Write the kernel scalars for step `t` (1-based, after increment) into `out` at `row`. Computed in
 * float64 and rounded once to f32, so the kernels see exactly these values on every thread.
 */
export function writeStepScalars(
  out: Float64Array,
  row: number,
  hp: HyperParams,
  lr: number,
  t: number,
  gradScale: number,
): void {
  const [b1, b2] = hp.betas;
  const bc1 = 1 - b1 ** t;
  const bc2 = 1 - b2 ** t;
  const f = Math.fround;
  out.set(
    [
      f(b1),
      f(1 - b1),
      f(b2),
      f(1 - b2),
      f(1 - lr * hp.weightDecay),
      f(lr / bc1),
      f(1 / Math.sqrt(bc2)),
      f(hp.eps),
      f(gradScale),
    ],
    row * HYPER_STRIDE,
  );
}
