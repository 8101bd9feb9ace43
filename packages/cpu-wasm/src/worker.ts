// Piscina worker: instantiates the kernels over the shared memory once, then runs calls on raw offsets.
import { workerData } from 'piscina';
import { instantiateKernels, type KernelExports } from './wasm.js';

export interface WorkerInit {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  stackBase: number;
  stackBytes: number;
  maxStacks: number;
  /** Shared counter handing each worker a distinct stack slot. */
  stackCounter: Int32Array;
}

export type KernelCall =
  | { kernel: 'axpy_f32'; yByteOffset: number; xByteOffset: number; length: number; a: number }
  | { kernel: 'sum_squares_f32'; xByteOffset: number; length: number };

const init = workerData as WorkerInit;
const slot = Atomics.add(init.stackCounter, 0, 1);
if (slot >= init.maxStacks) throw new Error(`worker stack slot ${slot} >= ${init.maxStacks}`);
const kernels: KernelExports = instantiateKernels(
  init.memory,
  init.stackBase + (slot + 1) * init.stackBytes,
  init.module,
);

export default function run(call: KernelCall): number {
  switch (call.kernel) {
    case 'axpy_f32':
      kernels.axpy_f32(call.yByteOffset, call.xByteOffset, call.length, call.a);
      return 0;
    case 'sum_squares_f32':
      return kernels.sum_squares_f32(call.xByteOffset, call.length);
  }
}
