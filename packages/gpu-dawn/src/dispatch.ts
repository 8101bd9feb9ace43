import type { GpuContext } from './device.js';

/** Split `workgroups` into an (x, y) grid within maxComputeWorkgroupsPerDimension. */
export function dispatchGrid(ctx: GpuContext, workgroups: number): { x: number; y: number } {
  const max = ctx.device.limits.maxComputeWorkgroupsPerDimension;
  if (workgroups <= max) return { x: Math.max(1, workgroups), y: 1 };
  const y = Math.ceil(workgroups / max);
  if (y > max) throw new Error(`dispatch of ${workgroups} workgroups exceeds ${max}^2`);
  return { x: Math.ceil(workgroups / y), y };
}
