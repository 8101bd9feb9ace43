import { describe, expect, it } from 'vitest';
import { systemInfo } from '../src/index.js';
import { availableParallelism } from 'node:os';

describe('systemInfo', () => {
  it('finds a real adapter and the wasm features (a missing adapter fails this test)', async () => {
    const info = await systemInfo();
    if ('error' in info.gpu) expect.fail(`no GPU adapter: ${info.gpu.error}`);
    expect(info.gpu.features.length).toBeGreaterThan(0);
    expect(info.gpu.limits.maxComputeWorkgroupSizeX).toBeGreaterThanOrEqual(256);
    expect(info.gpu.toggles).toContain('vulkan_enable_f16_on_nvidia');
    expect(info.wasm).toEqual({ simd128: true, threads: true, cores: availableParallelism() });
  });
});
