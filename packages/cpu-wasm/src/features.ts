// What this JavaScript engine offers the optimizer: SIMD, shared memory (threads), and core count.
import { availableParallelism } from 'node:os';

// (module (func (result v128) (v128.const i32x4 0 0 0 0)))
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11,
]);

export interface WasmFeatures {
  simd128: boolean;
  threads: boolean;
  cores: number;
}

export function wasmFeatures(): WasmFeatures {
  let threads: boolean;
  try {
    threads =
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    threads = false;
  }
  return { simd128: WebAssembly.validate(SIMD_PROBE), threads, cores: availableParallelism() };
}
