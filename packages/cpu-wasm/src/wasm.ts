// Loads the kernels module (built from ./crate by tools/build-wasm.mjs into ./pkg) over a shared memory.
import {
  compileModule,
  exportedFunctions,
  instantiate,
  type LspOffloadCpuExports,
} from '../pkg/lsp_offload_cpu.js';
import { MAX_MEMORY_BYTES, PAGE_BYTES } from './layout.js';

export type KernelExports = LspOffloadCpuExports;
export { compileModule };

/** Every function the TypeScript side calls: checked at load so a stale ./pkg fails with a clear message. */
const REQUIRED = [
  'adamw_f32g',
  'adamw_f16g',
  'adamw_f32g_f16p',
  'adamw_f16g_f16p',
  'adamw_step_f32g_f32o',
  'adamw_step_f32g_f16o',
  'adamw_step_f16g_f32o',
  'adamw_step_f16g_f16o',
  'sum_squares_f32',
  'sum_squares_f16',
  'count_nonfinite_f32',
  'count_nonfinite_f16',
  'f16_to_f32',
  'f32_to_f16',
  'copy_f32',
  'axpy_f32',
] as const;

function checkExports(): void {
  const missing = REQUIRED.filter((f) => !exportedFunctions.includes(f));
  if (missing.length > 0)
    throw new Error(
      `cpu-wasm: the built module lacks ${missing.join(', ')}; rebuild it (npx nx run @lsp-offload/cpu-wasm:build)`,
    );
}

/** A shared WebAssembly memory of `bytes` (rounded up to pages) that can grow to `maxBytes`. */
export function createSharedMemory(bytes: number, maxBytes = bytes): WebAssembly.Memory {
  const initial = Math.ceil(bytes / PAGE_BYTES);
  const maximum = Math.max(initial, Math.ceil(maxBytes / PAGE_BYTES));
  if (maximum * PAGE_BYTES > MAX_MEMORY_BYTES)
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
  checkExports();
  if (stackTopBytes % 16 !== 0) throw new Error(`stack top ${stackTopBytes} must be 16-byte aligned`);
  const exports = instantiate(memory, module);
  exports.__stack_pointer.value = stackTopBytes;
  return exports;
}

/**
 * Kernels for the calling thread over `memory`, on the module's own main-thread stack (the linker's
 * stack below `__heap_base`, which no worker slot overlaps). For short leaf calls such as conversions.
 */
export function mainThreadKernels(
  memory: WebAssembly.Memory,
  module: WebAssembly.Module = compileModule(),
): KernelExports {
  checkExports();
  return instantiate(memory, module);
}

let cachedHeapBase: number | undefined;

/** Bytes below which the module keeps its own data and main-thread stack; worker stacks start here. */
export function heapBase(module: WebAssembly.Module = compileModule()): number {
  if (cachedHeapBase !== undefined) return cachedHeapBase;
  // A small probe memory: an imported memory may declare a smaller maximum than the module allows.
  const probe = new WebAssembly.Memory({ initial: 64, maximum: 64, shared: true });
  cachedHeapBase = instantiate(probe, module).__heap_base.value as number;
  return cachedHeapBase;
}
