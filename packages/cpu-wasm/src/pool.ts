// A persistent Piscina pool whose workers instantiate the kernels over one shared memory (zero copy).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { compileModule, heapBase } from './wasm.js';
import type { KernelCall, WorkerInit } from './worker.js';

export const WORKER_STACK_BYTES = 256 * 1024;

/** The compiled worker script (tests run the TS sources; workers always run the built JS). */
function workerFile(): string {
  const built = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (existsSync(built)) return built;
  const fromSrc = fileURLToPath(new URL('../dist/worker.js', import.meta.url));
  if (existsSync(fromSrc)) return fromSrc;
  throw new Error(
    `cpu-wasm worker script not found at ${built}: build the package first (nx run cpu-wasm:build)`,
  );
}

export interface KernelPoolOptions {
  threads: number;
  memory: WebAssembly.Memory;
}

/**
 * Worker threads sharing `memory`. Worker stacks live at the start of the heap:
 * [heapBase, heapBase + threads * WORKER_STACK_BYTES); callers allocate above `firstFreeByte`.
 */
export class KernelPool {
  readonly threads: number;
  readonly firstFreeByte: number;
  private readonly pool: Piscina<KernelCall, number>;
  private destroyed = false;

  constructor(options: KernelPoolOptions) {
    const { threads, memory } = options;
    if (!Number.isInteger(threads) || threads < 1)
      throw new RangeError(`threads must be a positive integer, got ${threads}`);
    const module = compileModule();
    const base = Math.ceil(heapBase(module) / 16) * 16;
    this.threads = threads;
    this.firstFreeByte = base + threads * WORKER_STACK_BYTES;
    if (memory.buffer.byteLength < this.firstFreeByte) {
      throw new RangeError(
        `shared memory of ${memory.buffer.byteLength} bytes cannot hold ${threads} worker stacks`,
      );
    }
    const init: WorkerInit = {
      memory,
      module,
      stackBase: base,
      stackBytes: WORKER_STACK_BYTES,
      maxStacks: threads,
      stackCounter: new Int32Array(new SharedArrayBuffer(4)),
    };
    this.pool = new Piscina<KernelCall, number>({
      filename: workerFile(),
      minThreads: threads,
      maxThreads: threads,
      // Compute-bound pool: keep threads alive between bursts and never queue more than one task per thread.
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      workerData: init,
    });
  }

  run(call: KernelCall): Promise<number> {
    if (this.destroyed) throw new Error('KernelPool used after destroy()');
    return this.pool.run(call);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.pool.destroy();
  }
}
