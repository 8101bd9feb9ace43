// A persistent Piscina pool whose workers run kernels over shared memories (zero copy): each worker
// instantiates the module once per memory it is sent, with its own stack slot in that memory.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { reservedBytes } from './layout.js';
import { PIECE_STRIDE, type KernelResult, type KernelTask, type WorkerInit } from './protocol.js';
import { compileModule, heapBase } from './wasm.js';

/**
 * The compiled worker entry (tests run the TS sources; workers always run the built JS). A CommonJS shim
 * that imports worker.js: see worker-entry.cts for why.
 */
function workerFile(): string {
  const built = fileURLToPath(new URL('./worker-entry.cjs', import.meta.url));
  if (existsSync(built)) return built;
  const fromSrc = fileURLToPath(new URL('../dist/worker-entry.cjs', import.meta.url));
  if (existsSync(fromSrc)) return fromSrc;
  throw new Error(
    `cpu-wasm worker script not found at ${built}: build the package first (npx nx run @lsp-offload/cpu-wasm:build)`,
  );
}

export interface KernelPoolOptions {
  threads: number;
  /** A memory to attach right away as id 0 (convenience for single-memory use). */
  memory?: WebAssembly.Memory;
}

/** What a caller hands the pool: pieces (see protocol.ts) and the scalar rows they index. */
export interface PoolTask {
  pieces: Float64Array;
  hypers?: Float64Array;
}

export class KernelPool {
  readonly threads: number;
  /** First byte of every attached memory that callers may use (below: module data and worker stacks). */
  readonly firstFreeByte: number;
  private readonly pool: Piscina<KernelTask, KernelResult>;
  private readonly memories = new Map<number, WebAssembly.Memory>();
  private destroyed = false;
  /** A worker error outside any task (e.g. at start-up): reported by the next call instead of crashing. */
  private failure: Error | null = null;

  constructor(options: KernelPoolOptions) {
    const { threads } = options;
    if (!Number.isInteger(threads) || threads < 1)
      throw new RangeError(`threads must be a positive integer, got ${threads}`);
    const module = compileModule();
    const base = heapBase(module);
    this.threads = threads;
    this.firstFreeByte = reservedBytes(base, threads);
    const init: WorkerInit = {
      module,
      heapBase: base,
      maxSlots: threads,
      slotCounter: new Int32Array(new SharedArrayBuffer(4)),
    };
    this.pool = new Piscina<KernelTask, KernelResult>({
      filename: workerFile(),
      minThreads: threads,
      maxThreads: threads,
      // Compute-bound pool: keep threads alive between bursts, one task per thread at a time.
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      recordTiming: false,
      workerData: init,
    });
    this.pool.on('error', (e: unknown) => {
      this.failure = e instanceof Error ? e : new Error(String(e));
    });
    if (options.memory) this.attach(options.memory);
  }

  /** Make a shared memory usable by tasks; returns its id. Its first `firstFreeByte` bytes are reserved. */
  attach(memory: WebAssembly.Memory): number {
    this.assertUsable();
    if (!(memory.buffer instanceof SharedArrayBuffer))
      throw new TypeError('KernelPool needs a shared WebAssembly.Memory (shared: true)');
    if (memory.buffer.byteLength < this.firstFreeByte)
      throw new RangeError(
        `shared memory of ${memory.buffer.byteLength} bytes cannot hold ${this.threads} worker stacks ` +
          `(needs at least ${this.firstFreeByte})`,
      );
    const id = this.memories.size;
    this.memories.set(id, memory);
    return id;
  }

  /** Run one task on one worker; resolves with one number per piece. */
  run(task: PoolTask): Promise<KernelResult> {
    this.assertUsable();
    const ids = new Set<number>();
    for (let at = 1; at < task.pieces.length; at += PIECE_STRIDE) ids.add(task.pieces[at]!);
    const memories: Array<[number, WebAssembly.Memory]> = [];
    for (const id of ids) {
      const m = this.memories.get(id);
      if (!m) throw new RangeError(`KernelPool: no attached memory with id ${id}`);
      memories.push([id, m]);
    }
    return this.pool.run({ memories, pieces: task.pieces, hypers: task.hypers ?? new Float64Array(0) });
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.pool.destroy();
  }

  private assertUsable(): void {
    if (this.destroyed) throw new Error('KernelPool used after destroy()');
    if (this.failure)
      throw new Error(`KernelPool: a worker failed: ${this.failure.message}`, { cause: this.failure });
  }
}
