// Copies between a mapped staging range (a plain ArrayBuffer that Dawn owns) and the caller's host memory
// (an ArrayBuffer, a SharedArrayBuffer or a shared WebAssembly.Memory). A single-threaded copy, not the
// map, limits device <-> shared memory on the H200 host; mapped ranges cannot be handed to worker
// threads, so 'threads' and 'async' split the copy over native threads (native-copy.ts). The variants stay
// selectable and bench/transfer.mjs measures each of them.
import { Buffer } from 'node:buffer';
import { availableParallelism } from 'node:os';
import { requireNativeHostCopy } from './native-copy.js';

/**
 * - `u8`: Uint8Array.prototype.set (V8 memmove; for shared buffers a relaxed-atomic word copy).
 * - `f64`: Float64Array.prototype.set over the 8-byte aligned bulk, bytes for the rest.
 * - `buffer`: Node's Buffer.prototype.copy (Node 20: the same TypedArray set; Node 22+: a native memmove).
 * - `fill`: Node's Buffer.prototype.fill with the source bytes as the pattern, which is one native
 *   memcpy (libc's, vectorised, non-temporal stores for large copies) whatever the buffers' kind, where
 *   V8's set copies shared memory one relaxed-atomic word at a time.
 * - `threads`: a native memcpy split over `threads` native threads; the main thread waits for it.
 * - `async`: in the rings, the same off the main thread (a Promise) for chunks of shared host memory of
 *   at least ASYNC_COPY_MIN_BYTES, so the main thread only starts copies; elsewhere as `threads`.
 *   `threads` and `async` need the native addon (nativeHostCopyStatus()).
 */
export const HOST_COPY_METHODS = ['u8', 'f64', 'buffer', 'fill', 'threads', 'async'] as const;
export type HostCopyMethod = (typeof HOST_COPY_METHODS)[number];

/** Methods that run on native threads. */
export const NATIVE_HOST_COPY_METHODS: readonly HostCopyMethod[] = ['threads', 'async'];

/** Below this, an 'async' copy runs on the calling thread: a thread hand-off costs more than the copy. */
export const ASYNC_COPY_MIN_BYTES = 256 << 10;

/** Native threads per copy by default: 4 (fewer on small machines), leaving cores to the CPU optimizer. */
export const DEFAULT_COPY_THREADS = Math.max(1, Math.min(4, availableParallelism()));

/** Copy `bytes` bytes from `src` at `srcOffset` to `dst` at `dstOffset` (the ranges do not overlap). */
export function copyHostBytes(
  method: HostCopyMethod,
  dst: ArrayBufferLike,
  dstOffset: number,
  src: ArrayBufferLike,
  srcOffset: number,
  bytes: number,
  threads = DEFAULT_COPY_THREADS,
): void {
  if (bytes === 0) return;
  switch (method) {
    case 'u8':
      new Uint8Array(dst, dstOffset, bytes).set(new Uint8Array(src, srcOffset, bytes));
      return;
    case 'f64': {
      // Float64Array views need 8-byte aligned offsets on both sides; otherwise copy bytes.
      const bulk = dstOffset % 8 === 0 && srcOffset % 8 === 0 ? bytes - (bytes % 8) : 0;
      if (bulk) {
        new Float64Array(dst, dstOffset, bulk / 8).set(new Float64Array(src, srcOffset, bulk / 8));
      }
      if (bulk < bytes) {
        new Uint8Array(dst, dstOffset + bulk, bytes - bulk).set(
          new Uint8Array(src, srcOffset + bulk, bytes - bulk),
        );
      }
      return;
    }
    case 'buffer':
      Buffer.from(src, srcOffset, bytes).copy(Buffer.from(dst, dstOffset, bytes));
      return;
    case 'fill':
      // A pattern as long as the target is copied exactly once (node_buffer.cc Fill: memcpy, no repeat).
      Buffer.from(dst, dstOffset, bytes).fill(new Uint8Array(src, srcOffset, bytes));
      return;
    case 'threads':
    case 'async':
      requireNativeHostCopy(`host copy '${method}'`).copy(
        new Uint8Array(dst, dstOffset, bytes),
        new Uint8Array(src, srcOffset, bytes),
        threads,
      );
      return;
  }
}
