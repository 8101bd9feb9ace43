import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime, add, matmul } from '@lsp-offload/gpu-dawn';
import { KernelProfiler, formatKernelProfile, kernelFamily } from '../../src/index.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

describe('kernel profile', () => {
  it('names families from pipeline labels', () => {
    expect(kernelFamily('attention.forward.f32.d64.64x64x16x16')).toBe('attention.forward');
    expect(kernelFamily('matmul.tiled.64x64x16.4x4.f32.v11')).toBe('matmul.tiled');
    expect(kernelFamily('reduce:f32:square:sum:')).toBe('reduce');
    expect(kernelFamily('cachedAttention:10:64')).toBe('cachedAttention');
    expect(kernelFamily('elementwise:add:f32')).toBe('elementwise.add');
  });

  it('times every dispatch of the work in its family, shares summing to 1', async () => {
    const profiler = new KernelProfiler(gpu);
    try {
      const a = gpu.upload('a', 'f32', [37, 29], new Float32Array(37 * 29).fill(0.5));
      const b = gpu.upload('b', 'f32', [29, 23], new Float32Array(29 * 23).fill(0.25));
      const c = gpu.tensor('c', 'f32', [37, 23], 'workspace');
      const profile = await profiler.measure(async () => {
        for (let i = 0; i < 3; i++) matmul(gpu, a, b, c);
        for (let i = 0; i < 5; i++) add(gpu, c, c, c);
        await gpu.sync();
      });
      expect(profile.supported).toBe(gpu.has('timestamp-query'));
      const byName = new Map(profile.families.map((f) => [f.family, f]));
      expect(byName.get('elementwise.add')?.dispatches).toBe(5);
      const matmuls = profile.families.filter((f) => f.family.startsWith('matmul'));
      expect(matmuls.reduce((n, f) => n + f.dispatches, 0)).toBe(3);
      expect(Math.abs(profile.families.reduce((s, f) => s + f.share, 0) - 1)).toBeLessThan(1e-9);
      expect(profile.families.every((f) => f.gpuMs > 0)).toBe(true);
      expect(formatKernelProfile('t', profile)).toMatch(/elementwise\.add\s+5\s+[\d.e-]+\s+[\d.]+ %/);
      for (const t of [a, b, c]) t.release();
    } finally {
      profiler.destroy();
    }
  });
});
