// Shared by the HF format tests: temporary directories, seeded random data, hand-made files.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

const made: string[] = [];

/** A fresh temporary directory, removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lsp-hf-'));
  made.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Deterministic uniform [0, 1) numbers (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A safetensors file built byte by byte, so tests can make files our writer never would: `header` is
 * serialized as given (a string is used verbatim), `headerLength` overrides the 8-byte prefix.
 */
export function writeRawSafetensors(
  path: string,
  header: object | string,
  data: Uint8Array,
  options: { headerLength?: bigint } = {},
): void {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, options.headerLength ?? BigInt(json.byteLength), true);
  const bytes = new Uint8Array(8 + json.byteLength + data.byteLength);
  bytes.set(prefix, 0);
  bytes.set(json, 8);
  bytes.set(data, 8 + json.byteLength);
  writeFileSync(path, bytes);
}

/** The bytes of a typed array. */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}
