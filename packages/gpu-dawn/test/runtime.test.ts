import { describe, expect, it } from 'vitest';
import { GpuRuntime, axpby } from '../src/index.js';
import { useGpu } from './harness.js';

const gpu = useGpu();

describe('GpuRuntime recording', () => {
  it('keeps thousands of dispatches with distinct params in one submit correct (uniform ring growth)', async () => {
    const g = gpu();
    const n = 33;
    const x = g.upload('x', 'f32', [n], new Float32Array(n).fill(1));
    const y = g.upload('y', 'f32', [n], new Float32Array(n).fill(0));
    // y = sum_k (k * 1) for k = 0..2999, each dispatch with its own `a` in its own params slot
    let want = 0;
    for (let k = 0; k < 3000; k++) {
      axpby(g, x, y, k, 1);
      want += k;
    }
    expect(g.pendingDispatches).toBe(3000);
    const got = await g.read(y);
    expect(Array.from(got)).toEqual(new Array(n).fill(want));
  });

  it('turns a GPU validation error into a thrown error naming the operation', async () => {
    const g = gpu();
    const bad = g.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = g.commandEncoder();
    enc.copyBufferToBuffer(bad, 0, bad, 0, 4); // MAP_READ buffer as copy source: invalid
    await expect(g.sync('the bad copy')).rejects.toThrow(/GPU error during the bad copy/);
  });

  it('refuses a binding over the adapter limit (or a lowered one) and a grid over the per-dimension limit before recording anything', async () => {
    const small = await GpuRuntime.create({ maxBindingBytes: 4096 });
    try {
      expect(small.maxBindingBytes).toBe(4096);
      expect(small.limits.maxStorageBufferBindingSize).toBeGreaterThan(4096);
      const x = small.upload('x', 'f32', [2048], new Float32Array(2048).fill(1));
      const y = small.upload('y', 'f32', [2048], new Float32Array(2048));
      expect(() => axpby(small, x, y, 2, 1)).toThrow(
        "axpby: binds 'x: f32[2048]' of 8.0 KiB, over the adapter's maxStorageBufferBindingSize (lowered to 4.0 KiB)",
      );
      expect(small.pendingDispatches).toBe(0);
      await small.sync('after the refused dispatch'); // nothing invalid was recorded
      x.release();
      y.release();
    } finally {
      small.destroy();
    }
    const g = gpu();
    expect(g.maxBindingBytes).toBe(g.limits.maxStorageBufferBindingSize);
    const max = g.limits.maxComputeWorkgroupsPerDimension;
    const t = g.tensor('t', 'f32', [4], 'workspace');
    const pipeline = g.pipeline(
      'test.noop',
      () =>
        '@group(0) @binding(0) var<storage, read_write> t: array<f32>;\n@compute @workgroup_size(1) fn main() { t[0] = 1.0; }',
    );
    expect(() =>
      g.dispatch({ label: 'huge grid', pipeline, bindings: [t], workgroups: [1, max + 1] }),
    ).toThrow(`huge grid: dispatch [1, ${max + 1}, 1] exceeds ${max} workgroups per dimension`);
    await g.sync('after the refused grid');
    t.release();
  });
});
