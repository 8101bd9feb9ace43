// Launch shapes for element-wise kernels: a 2D grid when the 1D count exceeds the per-dimension limit.
import type { GpuRuntime } from '../runtime.js';

export interface Grid1d {
  workgroups: [number, number];
  /** Invocations per grid row: element index = gid.y * rowStride + gid.x. */
  rowStride: number;
}

export function grid1d(gpu: GpuRuntime, elements: number, workgroupSize: number): Grid1d {
  const groups = Math.max(1, Math.ceil(elements / workgroupSize));
  const max = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  const y = Math.ceil(groups / max);
  const x = Math.ceil(groups / y);
  return { workgroups: [x, y], rowStride: x * workgroupSize };
}
