// Loads the kernels module (built from ./crate by tools/build-wasm.mjs into ./pkg) over a shared memory.
import { compileModule, instantiate, type LspOffloadCpuExports } from '../pkg/lsp_offload_cpu.js';

export type KernelExports = LspOffloadCpuExports;
export { compileModule };

const PAGE_BYTES = 65536;

/** A shared WebAssembly memory of `bytes` (rounded up to pages) that can grow to `maxBytes`. */
export function createSharedMemory(bytes: number, maxBytes = bytes): WebAssembly.Memory {
  const initial = Math.ceil(bytes / PAGE_BYTES);
  const maximum = Math.max(initial, Math.ceil(maxBytes / PAGE_BYTES));
  if (maximum > 65536)
    throw new RangeError(`a wasm32 memory holds at most 4 GiB; asked for ${maxBytes} bytes`);
  return new WebAssembly.Memory({ initial, maximum, shared: true });
}

/**
 * Instantiate the kernels over `memory`, giving this instance its own stack: every instance starts with
 * the same __stack_pointer, so threads sharing one memory would otherwise share one stack.
 */
export function instantiateKernels(
  memory: WebAssembly.Memory,
  stackTopBytes: number,
  module: WebAssembly.Module = compileModule(),
): KernelExports {
  const exports = instantiate(memory, module);
  if (stackTopBytes % 16 !== 0) throw new Error(`stack top ${stackTopBytes} must be 16-byte aligned`);
  exports.__stack_pointer.value = stackTopBytes;
  return exports;
}

/** Bytes below which the module keeps its own data and main-thread stack; arenas start above it. */
export function heapBase(module: WebAssembly.Module = compileModule()): number {
  const probe = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
  return instantiate(probe, module).__heap_base.value as number;
}
