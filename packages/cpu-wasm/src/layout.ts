// Sizes and alignments shared by the allocator, the pool and the workers.

export const PAGE_BYTES = 65536;
/** wasm32 addresses 4 GiB: the most one shared memory can hold. */
export const MAX_MEMORY_BYTES = 65536 * PAGE_BYTES;
/** Cache line: every array starts on one, and ranges handed to threads start on one. */
export const ALIGN_BYTES = 64;
/**
 * Stack of one worker's instance. The kernels are leaf loops that keep everything in wasm locals, so
 * they barely touch the stack; the slot exists so two instances can never write the same bytes.
 */
export const WORKER_STACK_BYTES = 64 * 1024;

/**
 * Gap left after every large array. Arrays of one tensor are streamed together; laid end to end with
 * power-of-two sizes (d x d states, 4096 x 4096 weights) their starts would share all low address bits
 * and fight over the same cache sets and DRAM banks: measured 5-10x slower at 64M elements. 64 KiB +
 * 4 KiB + 64 B shifts each next array's start in the cache-index, page and line bits at once.
 */
export const STAGGER_BYTES = 65536 + 4096 + 64;
/** Arrays smaller than this stay in cache anyway and get no gap. */
export const STAGGER_MIN_BYTES = 1 << 20;

export function alignUp(n: number, a: number = ALIGN_BYTES): number {
  return Math.ceil(n / a) * a;
}

/**
 * Layout of every shared memory: [0, heapBase) the module's data and main-thread stack, then one stack
 * slot per worker, then the arena. Returns the arena's first byte.
 */
export function reservedBytes(heapBase: number, threads: number): number {
  return alignUp(alignUp(heapBase, 16) + threads * WORKER_STACK_BYTES);
}

/** Stack top (stacks grow down) of worker slot `slot`. */
export function workerStackTop(heapBase: number, slot: number): number {
  return alignUp(heapBase, 16) + (slot + 1) * WORKER_STACK_BYTES;
}
