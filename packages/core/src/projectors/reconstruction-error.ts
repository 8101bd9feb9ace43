// The reconstruction error e(L, R; G) = ||L L^T G R R^T - G||_F / ||G||_F of a projector pair on a dense
// gradient, and its gradient with respect to the projectors' values, on the GPU with the sparse kernels
// only (no dense projector is ever formed). The closed form is derived in reconstruction-reference.ts.
//
// The pieces are recorded without host syncs so a caller can batch many gradients into one readback:
// recordResidual leaves R' and the intermediates in scratch tensors; recordHalfSquaredResidualGradient
// writes the gradient of ||R'||^2 / 2, which equals (f g) de/d(values), so one host-side scale per
// gradient (after reading f = ||R'||) turns it into de/d(values).
import {
  addTimesProjT,
  expandRows,
  gatherColumns,
  gatherRowsT,
  reduceSumOfSquares,
  sampledRowDots,
  type GpuRuntime,
  type SparseProjectorTensors,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import type { ErrorAndGradient } from './reconstruction-reference.js';

/** R' = G - L S R^T and the intermediates its gradient reuses (scratch: valid until the next submit). */
export interface ResidualTensors {
  /** G R [rows, d] */
  gr: Tensor;
  /** S = L^T G R [d, d] */
  s: Tensor;
  /** R' [rows, cols] */
  residual: Tensor;
}

function checkPair(g: Tensor, l: SparseProjectorTensors, r: SparseProjectorTensors): [number, number] {
  const [rows, cols] = g.shape as [number, number];
  if (g.shape.length !== 2 || g.dtype !== 'f32')
    throw new Error(`reconstruction error: gradient ${g} must be f32 [rows, cols]`);
  if (l.rows !== rows || r.rows !== cols || l.d !== r.d)
    throw new Error(
      `reconstruction error: projectors ${l.rows} x ${l.d} and ${r.rows} x ${r.d} do not fit gradient ${g}`,
    );
  return [rows, cols];
}

/** Record a copy of src's elements into dst starting at element dstOffset (both 4-byte dtypes). */
export function recordCopy(gpu: GpuRuntime, src: Tensor, dst: Tensor, dstOffset = 0): void {
  if (src.byteLength % 4 !== 0 || dstOffset + src.numel > dst.numel || src.dtype !== dst.dtype)
    throw new Error(`copy of ${src} into ${dst} at ${dstOffset} does not fit`);
  gpu
    .commandEncoder()
    .copyBufferToBuffer(
      src.buffer,
      src.byteOffset,
      dst.buffer,
      dst.byteOffset + dstOffset * 4,
      src.byteLength,
    );
}

/** Record R' = G - L L^T G R R^T: GR = G.R, S = L^T.GR, F = L.S, R' = G - F.R^T. */
export function recordResidual(
  gpu: GpuRuntime,
  g: Tensor,
  l: SparseProjectorTensors,
  r: SparseProjectorTensors,
): ResidualTensors {
  const [rows, cols] = checkPair(g, l, r);
  const d = l.d;
  const gr = gpu.scratch('reconstruction.GR', 'f32', [rows, d]);
  gatherColumns(gpu, g, r, gr);
  const s = gpu.scratch('reconstruction.S', 'f32', [d, d]);
  gatherRowsT(gpu, gr, l, s);
  const f = gpu.scratch('reconstruction.LS', 'f32', [rows, d]);
  expandRows(gpu, s, l, f);
  const residual = gpu.scratch('reconstruction.residual', 'f32', [rows, cols]);
  recordCopy(gpu, g, residual);
  addTimesProjT(gpu, residual, f, r, -1);
  return { gr, s, residual };
}

/**
 * Record the gradient of ||R'||_F^2 / 2 with respect to L's and R's values (positions fixed):
 *   outLeft  = -[ R'R S^T + GR T'^T ]   at L's positions,
 *   outRight = -[ (G^T L) T' + (R'^T L) S ]   at R's positions,   T' = L^T R' R.
 * de/d(values) is this divided by f g (f = ||R'||_F, g = ||G||_F).
 */
export function recordHalfSquaredResidualGradient(
  gpu: GpuRuntime,
  g: Tensor,
  l: SparseProjectorTensors,
  r: SparseProjectorTensors,
  res: ResidualTensors,
  outLeft: Tensor,
  outRight: Tensor,
): void {
  const [rows, cols] = checkPair(g, l, r);
  const d = l.d;
  const resR = gpu.scratch('reconstruction.residualR', 'f32', [rows, d]);
  gatherColumns(gpu, res.residual, r, resR);
  const tp = gpu.scratch('reconstruction.T', 'f32', [d, d]);
  gatherRowsT(gpu, resR, l, tp);
  sampledRowDots(gpu, resR, res.s, l, outLeft, { alpha: -1 });
  sampledRowDots(gpu, res.gr, tp, l, outLeft, { alpha: -1, accumulate: true });
  // G^T L and R'^T L are formed as their transposes L^T G, L^T R' [d, cols] and read transposed
  const ltg = gpu.scratch('reconstruction.LtG', 'f32', [d, cols]);
  gatherRowsT(gpu, g, l, ltg);
  sampledRowDots(gpu, ltg, tp, r, outRight, { alpha: -1, uTransposed: true, vTransposed: true });
  const ltres = gpu.scratch('reconstruction.LtResidual', 'f32', [d, cols]);
  gatherRowsT(gpu, res.residual, l, ltres);
  sampledRowDots(gpu, ltres, res.s, r, outRight, {
    alpha: -1,
    accumulate: true,
    uTransposed: true,
    vTransposed: true,
  });
}

/** e(L, R; G) for one gradient (one host readback). */
export async function reconstructionError(
  gpu: GpuRuntime,
  g: Tensor,
  l: SparseProjectorTensors,
  r: SparseProjectorTensors,
): Promise<number> {
  const sums = gpu.scratch('reconstruction.sums', 'f32', [2]);
  const res = recordResidual(gpu, g, l, r);
  reduceSumOfSquares(gpu, res.residual, { out: sums, outIndex: 0 });
  reduceSumOfSquares(gpu, g, { out: sums, outIndex: 1 });
  const [residualSq, gradientSq] = (await gpu.read(sums)) as Float32Array;
  if (!(gradientSq! > 0)) throw new Error(`reconstruction error of the zero gradient ${g} is undefined`);
  return Math.sqrt(residualSq!) / Math.sqrt(gradientSq!);
}

/** e and de/d(values) of L and R (row-form order) for one gradient (one host readback). */
export async function reconstructionErrorGradient(
  gpu: GpuRuntime,
  g: Tensor,
  l: SparseProjectorTensors,
  r: SparseProjectorTensors,
): Promise<ErrorAndGradient> {
  const nl = l.rows * l.r;
  const nr = r.rows * r.r;
  // one buffer holds both sums and both gradients, so everything comes back in one readback
  const packed = gpu.scratch('reconstruction.packed', 'f32', [2 + nl + nr]);
  const res = recordResidual(gpu, g, l, r);
  reduceSumOfSquares(gpu, res.residual, { out: packed, outIndex: 0 });
  reduceSumOfSquares(gpu, g, { out: packed, outIndex: 1 });
  const outLeft = gpu.scratch('reconstruction.gradL', 'f32', [nl]);
  const outRight = gpu.scratch('reconstruction.gradR', 'f32', [nr]);
  recordHalfSquaredResidualGradient(gpu, g, l, r, res, outLeft, outRight);
  recordCopy(gpu, outLeft, packed, 2);
  recordCopy(gpu, outRight, packed, 2 + nl);
  const host = (await gpu.read(packed)) as Float32Array;
  const f = Math.sqrt(host[0]!);
  const gNorm = Math.sqrt(host[1]!);
  if (!(gNorm > 0)) throw new Error(`reconstruction error of the zero gradient ${g} is undefined`);
  const scale = f > 0 ? 1 / (f * gNorm) : 0;
  return {
    error: f / gNorm,
    left: Float64Array.from(host.subarray(2, 2 + nl), (x) => x * scale),
    right: Float64Array.from(host.subarray(2 + nl), (x) => x * scale),
  };
}
