// Learning a projector pair: minimise the mean reconstruction error over a set of dense gradients by Adam
// on the values, positions fixed (the caller draws fresh random positions per refit), with a cosine
// learning-rate decay and an early stop once the mean error reaches the target. The error and its value
// gradient are computed on the GPU (pair-evaluation.ts); Adam runs on the host in float64 since a pair
// has only (rows + cols) x r values.
import {
  releaseSparseProjector,
  syncColumnValues,
  type GpuRuntime,
  type SparseProjectorTensors,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import { DEFAULT_ADAM, HostAdam, cosineLearningRate, type AdamSettings } from './host-adam.js';
import { evaluatePair, gradientNorms } from './pair-evaluation.js';
import { SparseProjector } from './sparse-projector.js';

export interface LearningOptions {
  /** Adam's base learning rate, decayed by a cosine to 0 over maxIterations. */
  lr: number;
  /** Adam steps at most. */
  maxIterations: number;
  /** Stop as soon as the mean error is <= this (the refit threshold alpha; 0 runs every iteration). */
  targetError: number;
  /**
   * First multiply both projectors' values by the common factor that best fits the reconstructions' scale
   * (closed form, see PairEvaluation.bestScale), so Adam's steps go to the shape rather than the scale.
   */
  rescaleStart: boolean;
  /**
   * Stop once the best mean error has improved by less than `minGain` (relative) over the last `window`
   * iterations (null: never). Fits that cannot reach alpha flatten out well before 100 iterations
   * (0.633 at 25, 0.605 at 50, 0.600 at 100 on 768 x 768 gradients at d = 512; README, Convergence),
   * and every iteration is a pass over all the group's held-out gradients.
   */
  plateau: { window: number; minGain: number } | null;
  adam: AdamSettings;
}

export const DEFAULT_LEARNING: LearningOptions = {
  lr: 0.1,
  maxIterations: 100,
  targetError: 0,
  rescaleStart: true,
  plateau: { window: 10, minGain: 0.005 },
  adam: DEFAULT_ADAM,
};

export interface LearningResult {
  /** The pair with the lowest mean error seen (the values after some step, or the starting ones). */
  left: SparseProjector;
  right: SparseProjector;
  /** Mean error of the pair as given. */
  startError: number;
  /** Mean error per evaluation: [0] the starting values (after any rescaling), [t] after t steps (for plots). */
  history: number[];
  /** Adam steps taken. */
  iterations: number;
  /** The returned pair's mean error, and its error on each gradient. */
  meanError: number;
  errors: Float64Array;
  reachedTarget: boolean;
  /** Learning stopped on a plateau (LearningOptions.plateau) before maxIterations. */
  plateaued: boolean;
  ms: number;
}

function checkGradients(gradients: readonly Tensor[], left: SparseProjector, right: SparseProjector): void {
  if (gradients.length === 0) throw new Error('learnProjectorPair: no gradients to learn from');
  if (left.d !== right.d) throw new Error(`learnProjectorPair: left d ${left.d} != right d ${right.d}`);
  for (const g of gradients) {
    if (g.shape.length !== 2 || g.shape[0] !== left.rows || g.shape[1] !== right.rows)
      throw new Error(`learnProjectorPair: gradient ${g} is not [${left.rows}, ${right.rows}]`);
  }
}

function writeValues(gpu: GpuRuntime, p: SparseProjectorTensors, values: Float32Array): void {
  gpu.write(p.values, values);
  syncColumnValues(gpu, p);
}

/** Learn the values of `start` (its positions are kept) on `gradients` (f32 [rows, cols] each). */
export async function learnProjectorPair(
  gpu: GpuRuntime,
  gradients: readonly Tensor[],
  start: { left: SparseProjector; right: SparseProjector },
  options: Partial<LearningOptions> = {},
): Promise<LearningResult> {
  const t0 = performance.now();
  const { lr, maxIterations, targetError, rescaleStart, plateau, adam } = { ...DEFAULT_LEARNING, ...options };
  checkGradients(gradients, start.left, start.right);
  const nl = start.left.values.length;
  const params = new Float64Array(nl + start.right.values.length);
  params.set(start.left.values);
  params.set(start.right.values, nl);
  const optimizer = new HostAdam(params.length, adam);
  const norms = await gradientNorms(gpu, gradients);
  const l = start.left.toGpu(gpu, 'learn.L');
  const r = start.right.toGpu(gpu, 'learn.R');
  const history: number[] = [];
  /** The best mean error after each evaluation (for the plateau test). */
  const bestSoFar: number[] = [];
  let plateaued = false;
  let startError = Number.NaN;
  let best: { meanError: number; values: Float32Array; errors: Float64Array } = {
    meanError: Number.POSITIVE_INFINITY,
    values: Float32Array.from(params),
    errors: new Float64Array(gradients.length),
  };
  try {
    if (rescaleStart) {
      const ev = await evaluatePair(gpu, gradients, norms, l, r, false);
      startError = ev.meanError;
      if (ev.bestScale > 0 && Number.isFinite(ev.bestScale) && ev.meanErrorAtBestScale < ev.meanError) {
        const factor = ev.bestScale ** 0.25;
        for (let i = 0; i < params.length; i++) params[i]! *= factor;
        const scaled = Float32Array.from(params);
        writeValues(gpu, l, scaled.subarray(0, nl));
        writeValues(gpu, r, scaled.subarray(nl));
      }
    }
    for (let t = 0; ; t++) {
      const last = t >= maxIterations;
      const ev = await evaluatePair(gpu, gradients, norms, l, r, !last);
      history.push(ev.meanError);
      if (t === 0 && !rescaleStart) startError = ev.meanError;
      const values = Float32Array.from(params); // exactly what the GPU evaluated
      if (ev.meanError < best.meanError) best = { meanError: ev.meanError, values, errors: ev.errors };
      bestSoFar.push(best.meanError);
      if (ev.meanError <= targetError || last) break;
      if (plateau && t >= plateau.window) {
        const before = bestSoFar[t - plateau.window]!;
        if (before - best.meanError < plateau.minGain * before) {
          plateaued = true;
          break;
        }
      }
      const grad = new Float64Array(params.length);
      grad.set(ev.left!);
      grad.set(ev.right!, nl);
      optimizer.update(params, grad, cosineLearningRate(lr, t, maxIterations));
      const next = Float32Array.from(params);
      writeValues(gpu, l, next.subarray(0, nl));
      writeValues(gpu, r, next.subarray(nl));
    }
  } finally {
    gpu.submit(); // nothing recorded may still use the tensors once they are given back
    releaseSparseProjector(l);
    releaseSparseProjector(r);
  }
  const withValues = (p: SparseProjector, values: Float32Array): SparseProjector =>
    new SparseProjector(p.rows, p.d, p.r, p.positions.slice(), values.slice());
  return {
    left: withValues(start.left, best.values.subarray(0, nl)),
    right: withValues(start.right, best.values.subarray(nl)),
    startError,
    history,
    iterations: optimizer.step,
    meanError: best.meanError,
    errors: best.errors,
    reachedTarget: best.meanError <= targetError,
    plateaued,
    ms: performance.now() - t0,
  };
}
