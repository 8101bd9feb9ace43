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
  /**
   * The common factor c minimising sum_j ||c A_j - G_j||^2 / ||G_j||^2 (A_j = L L^T G_j R R^T; 1 if no
   * gradient is reconstructed at all). Multiplying both projectors' values by c^(1/4) multiplies every
   * reconstruction by c: random values N(0, 1/r) make L L^T about rows/d times too large, so a learning
   * starts from here instead of spending its steps on the scale.
   */
  bestScale: number;
  /** Mean e over the non-zero gradients after that rescaling. */
  meanErrorAtBestScale: number;
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
  // [0, n): ||R'_j||^2; [n, 2n): ||S_j||^2; then per gradient j the unscaled value gradients of L and R
  const gradientBase = 2 * n;
  const packed = gpu.tensor(
    'pairEvaluation.packed',
    'f32',
    [gradientBase + (withGradient ? n * stride : 0)],
    'workspace',
  );
  let host: Float32Array;
  try {
    gradients.forEach((g, j) => {
      if (!(norms[j]! > 0)) return;
      const res = recordResidual(gpu, g, l, r);
      reduceSumOfSquares(gpu, res.residual, { out: packed, outIndex: j });
      reduceSumOfSquares(gpu, res.s, { out: packed, outIndex: n + j });
      if (withGradient) {
        const outLeft = gpu.scratch('pairEvaluation.gradL', 'f32', [nl]);
        const outRight = gpu.scratch('pairEvaluation.gradR', 'f32', [nr]);
        recordHalfSquaredResidualGradient(gpu, g, l, r, res, outLeft, outRight);
        recordCopy(gpu, outLeft, packed, gradientBase + j * stride);
        recordCopy(gpu, outRight, packed, gradientBase + j * stride + nl);
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
    const base = gradientBase + j * stride;
    for (let k = 0; k < nl; k++) left[k]! += scale * host[base + k]!;
    for (let k = 0; k < nr; k++) right[k]! += scale * host[base + nl + k]!;
  }
  return { errors, meanError: counted ? sum / counted : 0, left, right, ...bestScaleOf(host, norms) };
}

/**
 * With A = L S R^T and S = L^T G R: <A, G> = ||S||^2 and ||A||^2 = ||R'||^2 - ||G||^2 + 2 ||S||^2, so the
 * least-squares scale and the errors it gives follow from the sums already read back.
 */
function bestScaleOf(
  host: Float32Array,
  norms: Float64Array,
): { bestScale: number; meanErrorAtBestScale: number } {
  const n = norms.length;
  const terms: { g2: number; ag: number; a2: number }[] = [];
  for (let j = 0; j < n; j++) {
    const g2 = norms[j]! ** 2;
    if (!(g2 > 0)) continue;
    const ag = host[n + j]!;
    terms.push({ g2, ag, a2: Math.max(0, host[j]! - g2 + 2 * ag) });
  }
  const num = terms.reduce((acc, t) => acc + t.ag / t.g2, 0);
  const den = terms.reduce((acc, t) => acc + t.a2 / t.g2, 0);
  const c = den > 0 ? num / den : 1;
  const errors = terms.map((t) => Math.sqrt(Math.max(0, t.g2 - 2 * c * t.ag + c * c * t.a2) / t.g2));
  return {
    bestScale: c,
    meanErrorAtBestScale: errors.length ? errors.reduce((a, b) => a + b, 0) / errors.length : 0,
  };
}
