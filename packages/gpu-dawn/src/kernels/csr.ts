// CSR sparse x dense products on the GPU, with float64 references.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { CSR_WG, csrLeftWgsl, csrRightTWgsl } from './csr.wgsl.js';

/** Host CSR matrix: rows x cols, entries of row a at rowPtr[a] .. rowPtr[a+1]. */
export interface CsrHost {
  rows: number;
  cols: number;
  rowPtr: Uint32Array;
  colIdx: Uint32Array;
  vals: Float32Array | Float64Array;
}

export interface CsrTensors {
  rows: number;
  cols: number;
  rowPtr: Tensor;
  colIdx: Tensor;
  vals: Tensor;
}

/** CSR from a dense row-major matrix, dropping exact zeros. */
export function csrFromDense(dense: ArrayLike<number>, rows: number, cols: number): CsrHost {
  const rowPtr = new Uint32Array(rows + 1);
  const idx: number[] = [];
  const vals: number[] = [];
  for (let a = 0; a < rows; a++) {
    for (let b = 0; b < cols; b++) {
      const v = dense[a * cols + b]!;
      if (v !== 0) {
        idx.push(b);
        vals.push(v);
      }
    }
    rowPtr[a + 1] = idx.length;
  }
  return { rows, cols, rowPtr, colIdx: Uint32Array.from(idx), vals: Float64Array.from(vals) };
}

export function uploadCsr(gpu: GpuRuntime, label: string, m: CsrHost): CsrTensors {
  if (m.rowPtr.length !== m.rows + 1)
    throw new Error(`${label}: rowPtr has ${m.rowPtr.length} entries, want ${m.rows + 1}`);
  const nnz = m.rowPtr[m.rows]!;
  // empty matrices still need a bindable buffer
  const n = Math.max(1, nnz);
  return {
    rows: m.rows,
    cols: m.cols,
    rowPtr: gpu.upload(`${label}.rowPtr`, 'u32', [m.rows + 1], m.rowPtr, 'workspace'),
    colIdx: gpu.upload(`${label}.colIdx`, 'u32', [n], nnz ? m.colIdx : [0], 'workspace'),
    vals: gpu.upload(`${label}.vals`, 'f32', [n], nnz ? m.vals : [0], 'workspace'),
  };
}

export function releaseCsr(m: CsrTensors): void {
  m.rowPtr.release();
  m.colIdx.release();
  m.vals.release();
}

function launch(
  gpu: GpuRuntime,
  label: string,
  code: string,
  a: CsrTensors,
  x: Tensor,
  out: Tensor,
  rows: number,
  cols: number,
  inner: number,
): void {
  const pipeline = gpu.pipeline(`csr.${label}`, () => code);
  const maxRows = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  for (let r0 = 0; r0 < rows; r0 += maxRows) {
    gpu.dispatch({
      label,
      pipeline,
      bindings: [a.rowPtr, a.colIdx, a.vals, x, out],
      params: new Params().u32(rows).u32(cols).u32(inner).u32(r0),
      workgroups: [Math.ceil(cols / CSR_WG), Math.min(maxRows, rows - r0)],
    });
  }
}

/** out [A.rows, C] = A . X, X: [A.cols, C] f32. */
export function csrLeft(gpu: GpuRuntime, a: CsrTensors, x: Tensor, out: Tensor): void {
  const C = x.numel / a.cols;
  if (!Number.isInteger(C) || x.dtype !== 'f32')
    throw new Error(`csrLeft: X ${x} must be f32 with ${a.cols} rows`);
  if (out.dtype !== 'f32' || out.numel !== a.rows * C)
    throw new Error(`csrLeft: out ${out} must be f32 [${a.rows}, ${C}]`);
  launch(gpu, 'csrLeft', csrLeftWgsl, a, x, out, a.rows, C, a.cols);
}

/** out [T, A.rows] = X . A^T, X: [T, A.cols] f32. */
export function csrRightT(gpu: GpuRuntime, x: Tensor, a: CsrTensors, out: Tensor): void {
  const T = x.numel / a.cols;
  if (!Number.isInteger(T) || x.dtype !== 'f32')
    throw new Error(`csrRightT: X ${x} must be f32 with ${a.cols} columns`);
  if (out.dtype !== 'f32' || out.numel !== T * a.rows)
    throw new Error(`csrRightT: out ${out} must be f32 [${T}, ${a.rows}]`);
  launch(gpu, 'csrRightT', csrRightTWgsl, a, x, out, T, a.rows, a.cols);
}

export function csrLeftReference(a: CsrHost, x: ArrayLike<number>, C: number): Float64Array {
  const out = new Float64Array(a.rows * C);
  for (let r = 0; r < a.rows; r++) {
    for (let e = a.rowPtr[r]!; e < a.rowPtr[r + 1]!; e++) {
      const v = a.vals[e]!;
      const k = a.colIdx[e]!;
      for (let c = 0; c < C; c++) out[r * C + c]! += v * x[k * C + c]!;
    }
  }
  return out;
}

export function csrRightTReference(x: ArrayLike<number>, T: number, a: CsrHost): Float64Array {
  const out = new Float64Array(T * a.rows);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < a.rows; r++) {
      let acc = 0;
      for (let e = a.rowPtr[r]!; e < a.rowPtr[r + 1]!; e++) acc += a.vals[e]! * x[t * a.cols + a.colIdx[e]!]!;
      out[t * a.rows + r] = acc;
    }
  }
  return out;
}
