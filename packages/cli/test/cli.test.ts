import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatBytes } from '../src/index.js';

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

describe('lsp-offload info', () => {
  it('prints the adapter and wasm support as JSON', () => {
    const out = execFileSync(process.execPath, [bin, 'info', '--json'], { encoding: 'utf8' });
    const info = JSON.parse(out);
    expect(info.gpu.error).toBeUndefined();
    expect(typeof info.gpu.description).toBe('string');
    expect(info.gpu.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(info.wasm.simd128).toBe(true);
  });

  it('prints a readable summary', () => {
    const out = execFileSync(process.execPath, [bin, 'info'], { encoding: 'utf8' });
    expect(out).toMatch(/GPU adapter: .+/);
    expect(out).toMatch(/WASM: simd128 yes, threads \(shared memory\) yes/);
    expect(out).toMatch(/CPU: \d+ cores/);
  });

  it('rejects an unknown command with a clear message', () => {
    expect(() =>
      execFileSync(process.execPath, [bin, 'frobnicate'], { encoding: 'utf8', stdio: 'pipe' }),
    ).toThrow(/unknown command|too many arguments/);
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(128 * 1024 * 1024)).toBe('128 MiB');
    expect(formatBytes(2 ** 40 * 1.25)).toBe('1.3 TiB');
  });
});
