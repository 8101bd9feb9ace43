// dst[:, dstCol : dstCol + width] = src[:, srcCol : srcCol + width] for row-major f32 or f16 matrices.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { COLUMNS_WG, copyColumnsWgsl } from './columns.wgsl.js';

export interface CopyColumnsArgs {
  /** f32 or f16 [rows, srcLd]. */
  src: Tensor;
  srcCol: number;
  /** [rows, dstLd], the dtype of src. */
  dst: Tensor;
  dstCol: number;
  width: number;
}

function cols2d(t: Tensor, what: string): [number, number] {
  if ((t.dtype !== 'f32' && t.dtype !== 'f16') || t.shape.length < 2)
    throw new Error(`copyColumns: ${what} ${t} must be an f32 or f16 matrix`);
  const ld = t.shape[t.shape.length - 1]!;
  return [t.numel / ld, ld];
}

export function copyColumns(gpu: GpuRuntime, a: CopyColumnsArgs): void {
  const [rows, srcLd] = cols2d(a.src, 'src');
  const [dstRows, dstLd] = cols2d(a.dst, 'dst');
  if (rows !== dstRows)
    throw new Error(`copyColumns: src ${a.src} and dst ${a.dst} have different row counts`);
  if (a.srcCol + a.width > srcLd || a.dstCol + a.width > dstLd || a.width < 1) {
    throw new Error(
      `copyColumns: columns [${a.srcCol}, +${a.width}) of ${a.src} -> [${a.dstCol}, +${a.width}) of ${a.dst} out of range`,
    );
  }
  if (a.src.dtype !== a.dst.dtype)
    throw new Error(`copyColumns: src ${a.src} and dst ${a.dst} differ in dtype`);
  const dtype = a.src.dtype as 'f32' | 'f16';
  if (dtype === 'f16' && !gpu.has('shader-f16'))
    throw new Error(`copyColumns: src ${a.src} is f16 but the device lacks 'shader-f16'`);
  const pipeline = gpu.pipeline(`copyColumns.${dtype}`, () => copyColumnsWgsl(dtype));
  const maxRows = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  for (let r0 = 0; r0 < rows; r0 += maxRows) {
    gpu.dispatch({
      label: 'copyColumns',
      pipeline,
      bindings: [a.src, a.dst],
      params: new Params()
        .u32(rows)
        .u32(a.width)
        .u32(srcLd)
        .u32(a.srcCol)
        .u32(dstLd)
        .u32(a.dstCol)
        .u32(r0)
        .u32(0),
      workgroups: [Math.ceil(a.width / COLUMNS_WG), Math.min(maxRows, rows - r0)],
    });
  }
}

export function copyColumnsReference(
  src: ArrayLike<number>,
  srcLd: number,
  srcCol: number,
  dst: ArrayLike<number>,
  dstLd: number,
  dstCol: number,
  width: number,
): Float64Array {
  const out = Float64Array.from(dst);
  const rows = src.length / srcLd;
  for (let t = 0; t < rows; t++)
    for (let j = 0; j < width; j++) out[t * dstLd + dstCol + j] = src[t * srcLd + srcCol + j]!;
  return out;
}
