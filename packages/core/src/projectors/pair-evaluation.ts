// The mean reconstruction error of one projector pair over a set of dense gradients and, when asked, its
// gradient with respect to the pair's values: the inner loop of learning and the refit check. Every
// gradient's sums and value gradients land in one packed buffer, so one evaluation costs one host
// readback however many gradients there are; a submit after each gradient lets its scratch (an R' as
// large as the gradient) be reused by the next.
import {
  reduceSumOfSquares,
  type GpuRuntime,
  type SparseProjectorTensors,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import { recordCopy, recordHalfSquaredResidualGradient, recordResidual } from './reconstruction-error.js';

export interface PairEvaluation {
  /** e per gradient (0 for a zero gradient, which has nothing to reconstruct). */
  errors: Float64Array;
  /** Mean of e over the non-zero gradients (0 if there are none). */
  meanError: number;
  /** d(meanError)/d(values of L), row-form order; present when the gradient was asked for. */
  left?: Float64Array;
  /** d(meanError)/d(values of R). */
  right?: Float64Array;
}

/** ||G||_F of each gradient (one readback); a non-finite gradient is an error naming it. */
export async function gradientNorms(gpu: GpuRuntime, gradients: readonly Tensor[]): Promise<Float64Array> {
  if (gradients.length === 0) return new Float64Array(0);
  const sums = gpu.tensor('pairEvaluation.gradientSums', 'f32', [gradients.length], 'workspace');
  try {
    gradients.forEach((g, j) => reduceSumOfSquares(gpu, g, { out: sums, outIndex: j }));
    const norms = Float64Array.from((await gpu.read(sums)) as Float32Array, Math.sqrt);
    norms.forEach((x, j) => {
      if (!Number.isFinite(x)) throw new Error(`gradient ${gradients[j]} has non-finite values (norm ${x})`);
    });
    return norms;
  } finally {
    sums.release();
  }
}

/**
 * Evaluate the pair (L, R) on every gradient. `norms` are the gradients' Frobenius norms (gradientNorms),
 * passed in because they do not change while a pair is learned.
 */
export async function evaluatePair(
  gpu: GpuRuntime,
  gradients: readonly Tensor[],
  norms: Float64Array,
  l: SparseProjectorTensors,
  r: SparseProjectorTensors,
  withGradient: boolean,
): Promise<PairEvaluation> {
  const n = gradients.length;
  if (norms.length !== n) throw new Error(`evaluatePair: ${norms.length} norms for ${n} gradients`);
  const nl = l.rows * l.r;
  const nr = r.rows * r.r;
  const stride = nl + nr;
  // [0, n): ||R'_j||^2; then per gradient j the unscaled value gradients of L and R
  const packed = gpu.tensor(
    'pairEvaluation.packed',
    'f32',
    [n + (withGradient ? n * stride : 0)],
    'workspace',
  );
  let host: Float32Array;
  try {
    gradients.forEach((g, j) => {
      if (!(norms[j]! > 0)) return;
      const res = recordResidual(gpu, g, l, r);
      reduceSumOfSquares(gpu, res.residual, { out: packed, outIndex: j });
      if (withGradient) {
        const outLeft = gpu.scratch('pairEvaluation.gradL', 'f32', [nl]);
        const outRight = gpu.scratch('pairEvaluation.gradR', 'f32', [nr]);
        recordHalfSquaredResidualGradient(gpu, g, l, r, res, outLeft, outRight);
        recordCopy(gpu, outLeft, packed, n + j * stride);
        recordCopy(gpu, outRight, packed, n + j * stride + nl);
      }
      gpu.submit();
    });
    host = (await gpu.read(packed)) as Float32Array;
  } finally {
    packed.release();
  }

  const errors = new Float64Array(n);
  const counted = norms.filter((x) => x > 0).length;
  const left = withGradient ? new Float64Array(nl) : undefined;
  const right = withGradient ? new Float64Array(nr) : undefined;
  let sum = 0;
  for (let j = 0; j < n; j++) {
    const g = norms[j]!;
    if (!(g > 0)) continue;
    const f = Math.sqrt(host[j]!);
    errors[j] = f / g;
    sum += errors[j]!;
    if (!left || !right || f === 0) continue;
    // de_j/d(values) = (gradient of ||R'||^2 / 2) / (f g); the mean weighs each gradient by 1 / counted
    const scale = 1 / (f * g * counted);
    const base = n + j * stride;
    for (let k = 0; k < nl; k++) left[k]! += scale * host[base + k]!;
    for (let k = 0; k < nr; k++) right[k]! += scale * host[base + nl + k]!;
  }
  return { errors, meanError: counted ? sum / counted : 0, left, right };
}
