// y = a*x + b*y on the GPU (f32), with its plain-TS float64 reference next to it.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { axpbyWgsl, WORKGROUP_SIZE } from './axpby.wgsl.js';
import { grid1d } from './grid.js';

/** Float64 reference: returns a*x + b*y. */
export function axpbyReference(
  a: number,
  x: ArrayLike<number>,
  b: number,
  y: ArrayLike<number>,
): Float64Array {
  if (x.length !== y.length) throw new Error(`axpbyReference: x has ${x.length} elements, y has ${y.length}`);
  const out = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = a * x[i]! + b * y[i]!;
  return out;
}

/** Record y = a*x + b*y (in place on y). */
export function axpby(gpu: GpuRuntime, x: Tensor, y: Tensor, a: number, b: number): void {
  if (x.numel !== y.numel || x.dtype !== 'f32' || y.dtype !== 'f32') {
    throw new Error(`axpby: expected two f32 tensors of equal size, got ${x} and ${y}`);
  }
  const g = grid1d(gpu, y.numel, WORKGROUP_SIZE);
  gpu.dispatch({
    label: 'axpby',
    pipeline: gpu.pipeline('axpby', () => axpbyWgsl),
    bindings: [x, y],
    params: new Params().u32(y.numel).f32(a).f32(b).u32(g.rowStride),
    workgroups: g.workgroups,
  });
}
