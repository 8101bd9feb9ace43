import { describe, expect, it } from 'vitest';
import { axpby } from '../src/index.js';
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
});
