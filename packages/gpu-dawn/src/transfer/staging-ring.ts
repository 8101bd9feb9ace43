// The shared machinery of both staging rings: a fixed set of staging buffers allocated once (accounted as
// 'staging' in GpuMemory) and reused, a FIFO queue of chunks, and at most one chunk per staging buffer in
// flight, so a transfer waits for a free buffer (back-pressure) instead of allocating more.
import type { GpuRuntime } from '../runtime.js';
import { copyHostBytes, HOST_COPY_METHODS, type HostCopyMethod } from './host-copy.js';
import {
  deviceRange,
  hostBytes,
  Transfer,
  TransferError,
  type DeviceRange,
  type DeviceSide,
  type HostView,
  type TransferDirection,
} from './transfer.js';

export interface StagingRingOptions {
  /** Bytes per staging buffer; larger transfers are split into chunks of this size (default 8 MiB). */
  chunkBytes?: number;
  /** Staging buffers, i.e. chunks in flight at once (default 4). */
  slots?: number;
  /** How bytes move between mapped ranges and host views (default 'fill'; see HOST_COPY_METHODS). */
  hostCopy?: HostCopyMethod;
  /** Names the staging buffers and errors. */
  label?: string;
}

// Defaults: 4 x 8 MiB per ring keeps several maps in flight while the main thread copies one chunk, and
// bounds staging memory to 32 MiB per direction. 'fill' is a native memcpy (on llvmpipe's host, copying
// out of mapped ranges into shared memory: 'fill' 9.8-11 GB/s, V8's set 3.5-8.7 GB/s); bench/transfer.mjs
// sweeps every method, chunk size and slot count on the target machine.
export const DEFAULT_CHUNK_BYTES = 8 << 20;
export const DEFAULT_SLOTS = 4;
export const DEFAULT_HOST_COPY: HostCopyMethod = 'fill';

export interface StagingRingStats {
  slots: number;
  chunkBytes: number;
  /** Chunks whose copy is submitted and whose staging buffer is not yet free. */
  inFlight: number;
  /** The most chunks ever in flight at once (never above `slots`). */
  maxInFlight: number;
  /** Chunks waiting for a free staging buffer. */
  queued: number;
  transfers: number;
  chunks: number;
  bytes: number;
}

/** @internal One chunk of a transfer: `bytes` host bytes <-> one device range, through one slot. */
export interface Chunk {
  transfer: Transfer;
  /** The chunk's bytes in the caller's host memory. */
  host: Uint8Array;
  device: DeviceRange;
}

export abstract class StagingRing {
  readonly chunkBytes: number;
  readonly slotCount: number;
  readonly hostCopy: HostCopyMethod;
  readonly label: string;
  protected readonly slots: GPUBuffer[] = [];
  /** Slots ready for a new chunk (for uploads: mapped for writing). */
  protected readonly ready: GPUBuffer[] = [];
  private readonly queue: (Chunk | undefined)[] = [];
  private queueHead = 0;
  private inFlight = 0;
  private maxInFlight = 0;
  private transfers = 0;
  private chunks = 0;
  private bytes = 0;
  private failure: Error | undefined;
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  protected constructor(
    protected readonly gpu: GpuRuntime,
    readonly direction: TransferDirection,
    options: StagingRingOptions,
    usage: number,
  ) {
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.slotCount = options.slots ?? DEFAULT_SLOTS;
    this.hostCopy = options.hostCopy ?? DEFAULT_HOST_COPY;
    this.label = options.label ?? `${direction}-ring`;
    if (!Number.isInteger(this.chunkBytes) || this.chunkBytes < 4096 || this.chunkBytes % 256 !== 0) {
      throw new RangeError(
        `${this.label}: chunkBytes must be a multiple of 256, >= 4096; got ${this.chunkBytes}`,
      );
    }
    if (!Number.isInteger(this.slotCount) || this.slotCount < 1) {
      throw new RangeError(`${this.label}: slots must be a positive integer; got ${this.slotCount}`);
    }
    if (!HOST_COPY_METHODS.includes(this.hostCopy)) {
      throw new RangeError(`${this.label}: hostCopy must be one of ${HOST_COPY_METHODS.join(', ')}`);
    }
    try {
      for (let i = 0; i < this.slotCount; i++) {
        this.slots.push(gpu.memory.allocate(`${this.label}.slot${i}`, this.chunkBytes, 'staging', usage));
      }
    } catch (e) {
      for (const slot of this.slots) gpu.memory.release(slot); // over budget: keep nothing half-made
      throw e;
    }
  }

  stats(): StagingRingStats {
    return {
      slots: this.slotCount,
      chunkBytes: this.chunkBytes,
      inFlight: this.inFlight,
      maxInFlight: this.maxInFlight,
      queued: this.queue.length - this.queueHead,
      transfers: this.transfers,
      chunks: this.chunks,
      bytes: this.bytes,
    };
  }

  /** Resolves once no chunk is queued or in flight. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Wait for every transfer, then give the staging buffers back to GpuMemory. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.idle();
    this.closed = true;
    for (const slot of this.slots) {
      if (slot.mapState === 'mapped') slot.unmap();
      this.gpu.memory.release(slot);
    }
    this.slots.length = 0;
    this.ready.length = 0;
  }

  /** Split a transfer into chunks, queue them and start as many as there are free slots. */
  protected start(
    host: HostView,
    side: DeviceSide,
    deviceOffset: number,
    label: string | undefined,
  ): Transfer {
    const name = label ?? this.label;
    if (this.closed) throw new TransferError(`${this.direction} '${name}': ${this.label} is closed`);
    if (this.failure) {
      throw new TransferError(
        `${this.direction} '${name}': ${this.label} failed earlier: ${this.failure.message}`,
      );
    }
    const bytes = hostBytes(this.direction, name, host);
    const range = deviceRange(this.direction, name, side, deviceOffset, bytes.byteLength);
    const count = Math.ceil(bytes.byteLength / this.chunkBytes);
    const transfer = new Transfer(this.direction, name, bytes.byteLength, count);
    for (let i = 0; i < count; i++) {
      const at = i * this.chunkBytes;
      const n = Math.min(this.chunkBytes, bytes.byteLength - at);
      this.queue.push({
        transfer,
        host: bytes.subarray(at, at + n),
        device: {
          buffer: range.buffer,
          offset: range.offset + at,
          bytes: n,
          copyBytes: Math.ceil(n / 4) * 4,
          name: range.name,
        },
      });
    }
    this.transfers++;
    this.chunks += count;
    this.bytes += bytes.byteLength;
    this.pump();
    return transfer;
  }

  /**
   * Give every free slot a queued chunk: `record` copies (for uploads, fills the slot and) records the
   * device copy into the runtime's encoder; one submit carries the whole batch (and whatever GPU work was
   * recorded before it, which the copies are therefore ordered after); then `complete` waits for each
   * slot's map and finishes the chunk.
   */
  protected pump(): void {
    let batch: [GPUBuffer, Chunk][] | undefined;
    while (this.ready.length && this.queueHead < this.queue.length) {
      const chunk = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined; // let the host views of started chunks be collected
      if (chunk.transfer.failed) continue;
      const slot = this.ready.pop()!;
      try {
        this.record(slot, chunk);
      } catch (e) {
        if (this.slotUsable(slot)) this.ready.push(slot);
        this.fail(chunk.transfer, e);
        continue;
      }
      (batch ??= []).push([slot, chunk]);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    if (!batch) return;
    this.gpu.submit();
    this.inFlight += batch.length;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    for (const [slot, chunk] of batch) {
      chunk.transfer.chunkEnqueued();
      void this.finish(slot, chunk);
    }
  }

  private async finish(slot: GPUBuffer, chunk: Chunk): Promise<void> {
    try {
      await this.complete(slot, chunk);
      // Errors of the submit that carried this chunk have been delivered by the time its map resolves.
      this.gpu.ctx.check(`${this.direction} '${chunk.transfer.label}' (${chunk.device.name})`);
      chunk.transfer.chunkDone();
    } catch (e) {
      this.fail(chunk.transfer, e);
    } finally {
      this.inFlight--;
      if (this.slotUsable(slot)) this.ready.push(slot);
      if (!this.closed) this.pump();
      if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private fail(transfer: Transfer, e: unknown): void {
    const err =
      e instanceof TransferError
        ? e
        : new TransferError(
            `${this.direction} '${transfer.label}' failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
          );
    this.failure ??= err;
    transfer.fail(err);
    // A failed map can cost a staging buffer: fail what is still queued rather than leave it waiting.
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]?.transfer.fail(err);
    this.queue.length = 0;
    this.queueHead = 0;
  }

  private isIdle(): boolean {
    return this.inFlight === 0 && this.queueHead >= this.queue.length;
  }

  /** Copy the host bytes between a mapped range and the chunk's host view. */
  protected copyToHost(mapped: ArrayBuffer, chunk: Chunk): void {
    copyHostBytes(this.hostCopy, chunk.host.buffer, chunk.host.byteOffset, mapped, 0, chunk.device.bytes);
  }

  protected copyFromHost(mapped: ArrayBuffer, chunk: Chunk): void {
    copyHostBytes(this.hostCopy, mapped, 0, chunk.host.buffer, chunk.host.byteOffset, chunk.device.bytes);
  }

  /** Record the chunk's device copy (synchronously, before the batch's submit). */
  protected abstract record(slot: GPUBuffer, chunk: Chunk): void;
  /** After the submit: wait until the slot is free again, moving the chunk's bytes on the way. */
  protected abstract complete(slot: GPUBuffer, chunk: Chunk): Promise<void>;
  /** Whether a slot can take a new chunk after `complete` (an upload slot whose map failed cannot). */
  protected abstract slotUsable(slot: GPUBuffer): boolean;
}
