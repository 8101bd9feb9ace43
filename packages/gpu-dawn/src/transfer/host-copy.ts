// Copies between a mapped staging range (a plain ArrayBuffer that Dawn owns) and the caller's host memory
// (an ArrayBuffer, a SharedArrayBuffer or a shared WebAssembly.Memory). On the H200 host this
// single-threaded copy, not the map, limits device -> shared memory (PLATFORM.md); mapped ranges cannot be
// handed to worker threads, so the variants stay selectable and bench/transfer.mjs measures each of them.
import { Buffer } from 'node:buffer';

/**
 * - `u8`: Uint8Array.prototype.set (V8 memmove; for shared buffers a relaxed-atomic word copy).
 * - `f64`: Float64Array.prototype.set over the 8-byte aligned bulk, bytes for the rest.
 * - `buffer`: Node's Buffer.prototype.copy (Node 20: the same TypedArray set; Node 22+: a native memmove).
 * - `fill`: Node's Buffer.prototype.fill with the source bytes as the pattern, which is one native
 *   memcpy (libc's, vectorised, non-temporal stores for large copies) whatever the buffers' kind, where
 *   V8's set copies shared memory one relaxed-atomic word at a time.
 */
export const HOST_COPY_METHODS = ['u8', 'f64', 'buffer', 'fill'] as const;
export type HostCopyMethod = (typeof HOST_COPY_METHODS)[number];

/** Copy `bytes` bytes from `src` at `srcOffset` to `dst` at `dstOffset` (the ranges do not overlap). */
export function copyHostBytes(
  method: HostCopyMethod,
  dst: ArrayBufferLike,
  dstOffset: number,
  src: ArrayBufferLike,
  srcOffset: number,
  bytes: number,
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
  }
}
