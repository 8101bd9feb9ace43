export { createSharedMemory, instantiateKernels, heapBase, compileModule } from './wasm.js';
export type { KernelExports } from './wasm.js';
export { wasmFeatures } from './features.js';
export type { WasmFeatures } from './features.js';
export { KernelPool, WORKER_STACK_BYTES } from './pool.js';
export type { KernelPoolOptions } from './pool.js';
export type { KernelCall } from './worker.js';
