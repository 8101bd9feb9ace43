// Moving AdamW moments into a new projector subspace after a refit (the authors' release re-zeroed them
// by mistake). For S = L^T G R, changing (L0, R0) -> (L1, R1):
//   m <- A_L m A_R,  v <- (A_L o A_L) v (A_R o A_R),  A_L = L1^T L0,  A_R = R0^T R1  (o: element-wise square)
// then NaN/Inf -> 0; the step count is kept. A_L, A_R are sparse (<= rows * r^2 non-zeros): computed on
// the host from the projectors' row forms, applied on the GPU as CSR x dense products.
import {
  csrLeft,
  csrRightT,
  releaseCsr,
  uploadCsr,
  type CsrHost,
  type CsrTensors,
  type GpuRuntime,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import type { SparseProjector } from './sparse-projector.js';

/** A^T B (d_A x d_B) of two projectors with the same rows, as CSR with columns ascending. */
export function projectorOverlap(a: SparseProjector, b: SparseProjector): CsrHost {
  if (a.rows !== b.rows) throw new Error(`projectorOverlap: ${a.rows} rows vs ${b.rows} rows`);
  const acc = new Map<number, number>();
  const cols = b.d;
  for (let l = 0; l < a.rows; l++) {
    for (let ka = 0; ka < a.r; ka++) {
      const pa = a.positions[l * a.r + ka]!;
      const va = a.values[l * a.r + ka]!;
      for (let kb = 0; kb < b.r; kb++) {
        const key = pa * cols + b.positions[l * b.r + kb]!;
        acc.set(key, (acc.get(key) ?? 0) + va * b.values[l * b.r + kb]!);
      }
    }
  }
  const keys = [...acc.keys()].sort((x, y) => x - y);
  const rowPtr = new Uint32Array(a.d + 1);
  const colIdx = new Uint32Array(keys.length);
  const vals = new Float64Array(keys.length);
  keys.forEach((key, e) => {
    const row = Math.floor(key / cols);
    rowPtr[row + 1]!++;
    colIdx[e] = key - row * cols;
    vals[e] = acc.get(key)!;
  });
  for (let r = 0; r < a.d; r++) rowPtr[r + 1]! += rowPtr[r]!;
  return { rows: a.d, cols, rowPtr, colIdx, vals };
}

function squared(m: CsrHost): CsrHost {
  return { ...m, vals: m.vals.map((v) => v * v) };
}

/** Dense float64 reference of the transfer (tests; builds d x d matrices). */
export function transferMomentsReference(
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  l0: SparseProjector,
  l1: SparseProjector,
  r0: SparseProjector,
  r1: SparseProjector,
): { m: Float64Array; v: Float64Array } {
  const d = l0.d;
  const dense = (c: CsrHost): Float64Array => {
    const out = new Float64Array(c.rows * c.cols);
    for (let a = 0; a < c.rows; a++)
      for (let e = c.rowPtr[a]!; e < c.rowPtr[a + 1]!; e++) out[a * c.cols + c.colIdx[e]!] = c.vals[e]!;
    return out;
  };
  const al = dense(projectorOverlap(l1, l0));
  const ar = dense(projectorOverlap(r0, r1));
  const mul = (x: ArrayLike<number>, y: ArrayLike<number>, sq: boolean): Float64Array => {
    const out = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let k = 0; k < d; k++) {
        const xv = sq ? x[i * d + k]! ** 2 : x[i * d + k]!;
        if (xv === 0) continue;
        for (let j = 0; j < d; j++) out[i * d + j]! += xv * y[k * d + j]!;
      }
    return out;
  };
  const right = (x: Float64Array, y: Float64Array, sq: boolean): Float64Array => {
    const out = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let k = 0; k < d; k++) {
        const xv = x[i * d + k]!;
        for (let j = 0; j < d; j++) out[i * d + j]! += xv * (sq ? y[k * d + j]! ** 2 : y[k * d + j]!);
      }
    return out;
  };
  const clean = (a: Float64Array): Float64Array => a.map((x) => (Number.isFinite(x) ? x : 0));
  return { m: clean(right(mul(al, m, false), ar, false)), v: clean(right(mul(al, v, true), ar, true)) };
}

/**
 * The GPU half of a moment transfer for one layer (or one shared projector pair): holds A_L, A_R^T and
 * their squares on the GPU; `apply` maps m and v (f32 d x d tensors) into the new subspace in place.
 */
export class MomentTransfer {
  private readonly al: CsrTensors;
  private readonly al2: CsrTensors;
  private readonly art: CsrTensors;
  private readonly art2: CsrTensors;

  constructor(
    private readonly gpu: GpuRuntime,
    l0: SparseProjector,
    l1: SparseProjector,
    r0: SparseProjector,
    r1: SparseProjector,
  ) {
    if (l0.d !== l1.d || r0.d !== r1.d || l0.d !== r0.d)
      throw new Error('MomentTransfer: projectors must share d');
    const al = projectorOverlap(l1, l0);
    const art = projectorOverlap(r1, r0); // (R0^T R1)^T
    this.al = uploadCsr(gpu, 'moment.AL', al);
    this.al2 = uploadCsr(gpu, 'moment.AL2', squared(al));
    this.art = uploadCsr(gpu, 'moment.ARt', art);
    this.art2 = uploadCsr(gpu, 'moment.ARt2', squared(art));
  }

  /** m <- A_L m A_R and v <- (A_L o A_L) v (A_R o A_R), in place; non-finite values are cleaned by the caller. */
  apply(m: Tensor, v: Tensor): void {
    const d = this.al.rows;
    for (const [t, left, rightT] of [
      [m, this.al, this.art],
      [v, this.al2, this.art2],
    ] as const) {
      if (t.dtype !== 'f32' || t.numel !== d * d)
        throw new Error(`MomentTransfer: ${t} must be f32 [${d}, ${d}]`);
      const tmp = this.gpu.scratch('moment.tmp', 'f32', [d, d]);
      csrLeft(this.gpu, left, t, tmp);
      csrRightT(this.gpu, tmp, rightT, t);
    }
  }

  release(): void {
    for (const c of [this.al, this.al2, this.art, this.art2]) releaseCsr(c);
  }
}

/** NaN/Inf -> 0 in place (moments after a transfer). Returns how many were replaced. */
export function zeroNonFinite(a: Float32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) {
      a[i] = 0;
      n++;
    }
  }
  return n;
}
