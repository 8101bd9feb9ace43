// Minimal buffer helpers: upload from and read back into ordinary (non-shared) typed arrays.
// Shared memory never goes through writeBuffer (it crashes Node 20's Dawn): transfers do that.
import type { GpuContext } from './device.js';

export function createStorageBuffer(ctx: GpuContext, label: string, bytes: number): GPUBuffer {
  return ctx.device.createBuffer({
    label,
    size: Math.max(4, Math.ceil(bytes / 4) * 4),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
}

export function uploadFloat32(ctx: GpuContext, label: string, data: Float32Array): GPUBuffer {
  if (data.buffer instanceof SharedArrayBuffer) {
    throw new Error(`uploadFloat32(${label}): SharedArrayBuffer views must go through a staging ring`);
  }
  const buf = createStorageBuffer(ctx, label, data.byteLength);
  ctx.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  return buf;
}

export async function readFloat32(
  ctx: GpuContext,
  src: GPUBuffer,
  count: number,
  what = src.label,
): Promise<Float32Array> {
  const bytes = count * 4;
  const staging = ctx.device.createBuffer({
    label: `${what}.readback`,
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = ctx.device.createCommandEncoder({ label: `${what}.readback` });
  enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
  ctx.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  ctx.check(`reading back ${what}`);
  return out;
}
