// y = a*x + b*y on the GPU, with its plain-TS float64 reference next to it.
import type { GpuContext } from '../device.js';
import { dispatchGrid } from '../dispatch.js';
import { axpbyWgsl, WORKGROUP_SIZE } from './axpby.wgsl.js';

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

const pipelines = new WeakMap<GPUDevice, GPUComputePipeline>();

function pipeline(device: GPUDevice): GPUComputePipeline {
  let p = pipelines.get(device);
  if (!p) {
    p = device.createComputePipeline({
      label: 'axpby',
      layout: 'auto',
      compute: { module: device.createShaderModule({ label: 'axpby', code: axpbyWgsl }), entryPoint: 'main' },
    });
    pipelines.set(device, p);
  }
  return p;
}

/** Encode y = a*x + b*y for `n` f32 elements of the given storage buffers. */
export function encodeAxpby(
  ctx: GpuContext,
  encoder: GPUCommandEncoder,
  args: { x: GPUBuffer; y: GPUBuffer; n: number; a: number; b: number },
): void {
  const { device } = ctx;
  const grid = dispatchGrid(ctx, Math.ceil(args.n / WORKGROUP_SIZE));
  const params = new ArrayBuffer(16);
  new Uint32Array(params, 0, 1)[0] = args.n;
  new Float32Array(params, 4, 2).set([args.a, args.b]);
  new Uint32Array(params, 12, 1)[0] = grid.x * WORKGROUP_SIZE;
  const uniform = device.createBuffer({
    label: 'axpby.params',
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(uniform, 0, params);
  const p = pipeline(device);
  const bind = device.createBindGroup({
    label: 'axpby',
    layout: p.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: args.x } },
      { binding: 1, resource: { buffer: args.y } },
      { binding: 2, resource: { buffer: uniform } },
    ],
  });
  const pass = encoder.beginComputePass({ label: 'axpby' });
  pass.setPipeline(p);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(grid.x, grid.y);
  pass.end();
}
