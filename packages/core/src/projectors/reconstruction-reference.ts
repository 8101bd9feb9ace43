// Dense float64 references of the reconstruction error of a projector pair and of its gradient with
// respect to the projectors' values. They form the dense rows x d and cols x d projectors, so they are for
// tests and tiny shapes only; the GPU versions (reconstruction-error.ts) never do.
//
// Convention: G is rows x cols (the weight's stored layout), L is rows x d, R is cols x d,
//   S = L^T G R,  R' = G - L S R^T,  e = ||R'||_F / ||G||_F.
// With f = ||R'||_F, g = ||G||_F and T' = L^T R' R, differentiating <R', R'> / 2 term by term gives
//   de/dL = -(1/(f g)) [ R' R S^T + G R T'^T ]
//   de/dR = -(1/(f g)) [ G^T L T' + R'^T L S ]
// and the gradient with respect to the values is these matrices read at the projectors' positions.
import type { SparseProjector } from './sparse-projector.js';

/** The error of a pair on one gradient and its gradient with respect to the values (row-form order). */
export interface ErrorAndGradient {
  error: number;
  left: Float64Array;
  right: Float64Array;
}

/** a [n, k] . b [k, m] (row-major), with either operand optionally read transposed. */
function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  n: number,
  k: number,
  m: number,
  aT = false,
  bT = false,
): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let acc = 0;
      for (let c = 0; c < k; c++)
        acc += (aT ? a[c * n + i]! : a[i * k + c]!) * (bT ? b[j * k + c]! : b[c * m + j]!);
      out[i * m + j] = acc;
    }
  }
  return out;
}

function frobenius(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

function checkShapes(
  g: ArrayLike<number>,
  rows: number,
  cols: number,
  l: SparseProjector,
  r: SparseProjector,
): void {
  if (g.length !== rows * cols) throw new Error(`gradient has ${g.length} elements, want ${rows} x ${cols}`);
  if (l.rows !== rows || r.rows !== cols || l.d !== r.d)
    throw new Error(
      `projectors ${l.rows} x ${l.d} and ${r.rows} x ${r.d} do not fit a ${rows} x ${cols} gradient`,
    );
}

/** The intermediates both references share. */
function residual(
  g: ArrayLike<number>,
  rows: number,
  cols: number,
  l: SparseProjector,
  r: SparseProjector,
): { ld: Float64Array; rd: Float64Array; gr: Float64Array; s: Float64Array; res: Float64Array } {
  checkShapes(g, rows, cols, l, r);
  const d = l.d;
  const ld = l.toDense();
  const rd = r.toDense();
  const gr = matmul(g, rd, rows, cols, d);
  const s = matmul(ld, gr, d, rows, d, true);
  const rec = matmul(matmul(ld, s, rows, d, d), rd, rows, d, cols, false, true);
  const res = new Float64Array(rows * cols);
  for (let i = 0; i < res.length; i++) res[i] = g[i]! - rec[i]!;
  return { ld, rd, gr, s, res };
}

/** e(L, R; G) = ||L L^T G R R^T - G||_F / ||G||_F in float64. */
export function reconstructionErrorReference(
  g: ArrayLike<number>,
  rows: number,
  cols: number,
  l: SparseProjector,
  r: SparseProjector,
): number {
  const gNorm = frobenius(g);
  if (gNorm === 0) throw new Error('reconstruction error of a zero gradient is undefined');
  return frobenius(residual(g, rows, cols, l, r).res) / gNorm;
}

/** A dense matrix [rows, d] read at the projector's positions, in row-form order. */
function sampleAtPositions(dense: Float64Array, p: SparseProjector): Float64Array {
  const out = new Float64Array(p.rows * p.r);
  for (let i = 0; i < p.rows; i++)
    for (let k = 0; k < p.r; k++) out[i * p.r + k] = dense[i * p.d + p.positions[i * p.r + k]!]!;
  return out;
}

/** e and de/d(values of L), de/d(values of R) from the closed form above, in float64. */
export function reconstructionErrorGradientReference(
  g: ArrayLike<number>,
  rows: number,
  cols: number,
  l: SparseProjector,
  r: SparseProjector,
): ErrorAndGradient {
  const d = l.d;
  const gNorm = frobenius(g);
  if (gNorm === 0) throw new Error('reconstruction error of a zero gradient is undefined');
  const { ld, rd, gr, s, res } = residual(g, rows, cols, l, r);
  const f = frobenius(res);
  const error = f / gNorm;
  if (f === 0) return { error, left: new Float64Array(l.rows * l.r), right: new Float64Array(r.rows * r.r) };
  const resR = matmul(res, rd, rows, cols, d); // R' R
  const tp = matmul(ld, resR, d, rows, d, true); // T' = L^T R' R
  const dl = matmul(resR, s, rows, d, d, false, true); // R' R S^T
  const grTt = matmul(gr, tp, rows, d, d, false, true); // G R T'^T
  const gtl = matmul(g, ld, cols, rows, d, true); // G^T L
  const restl = matmul(res, ld, cols, rows, d, true); // R'^T L
  const dr = matmul(gtl, tp, cols, d, d); // G^T L T'
  const restlS = matmul(restl, s, cols, d, d); // R'^T L S
  const scale = -1 / (f * gNorm);
  for (let i = 0; i < dl.length; i++) dl[i] = scale * (dl[i]! + grTt[i]!);
  for (let i = 0; i < dr.length; i++) dr[i] = scale * (dr[i]! + restlS[i]!);
  return { error, left: sampleAtPositions(dl, l), right: sampleAtPositions(dr, r) };
}
