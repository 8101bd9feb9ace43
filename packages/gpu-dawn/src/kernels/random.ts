// Fill a tensor with N(mean, std) values on the GPU (weights of random-initialised models).
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { grid1d } from './grid.js';
import { elementBlocks, sliceElements } from '../binding-blocks.js';
import { RANDOM_WG, fillNormalWgsl } from './random.wgsl.js';

export function fillNormal(
  gpu: GpuRuntime,
  t: Tensor,
  options: { seed: number; mean?: number; std?: number },
): void {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new Error(`fillNormal: ${t} must be f32 or f16`);
  // a tensor larger than one binding is filled slice by slice, each drawing the values of its own
  // element positions: the same values as in one pass
  for (const b of elementBlocks(gpu, [t], t.numel)) {
    const slice = sliceElements(t, b.start, b.count);
    const g = grid1d(gpu, Math.ceil(b.count / 2), RANDOM_WG);
    gpu.dispatch({
      label: `fillNormal(${t.label})`,
      pipeline: gpu.pipeline(`fillNormal.${t.dtype}`, () => fillNormalWgsl(t.dtype as 'f32' | 'f16')),
      bindings: [slice],
      params: new Params()
        .u32(b.count)
        .u32(options.seed >>> 0)
        .f32(options.mean ?? 0)
        .f32(options.std ?? 1)
        .u32(g.rowStride)
        .u32(b.start / 2)
        .u32(0)
        .u32(0),
      workgroups: g.workgroups,
    });
  }
}
