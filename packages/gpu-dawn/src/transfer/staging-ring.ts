// The shared machinery of both staging rings: a fixed set of staging buffers allocated once (accounted as
// 'staging' in GpuMemory) and reused, a FIFO queue of chunks, and at most one chunk per staging buffer in
// flight, so a transfer waits for a free buffer (back-pressure) instead of allocating more.
import type { GpuRuntime } from '../runtime.js';
import {
  ASYNC_COPY_MIN_BYTES,
  copyHostBytes,
  DEFAULT_COPY_THREADS,
  HOST_COPY_METHODS,
  NATIVE_HOST_COPY_METHODS,
  type HostCopyMethod,
} from './host-copy.js';
import { nativeHostCopy, requireNativeHostCopy } from './native-copy.js';
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
  /** How bytes move between mapped ranges and host views (default DEFAULT_HOST_COPY; see HOST_COPY_METHODS). */
  hostCopy?: HostCopyMethod;
  /** Native threads per chunk copy for hostCopy 'threads' and 'async' (default DEFAULT_COPY_THREADS). */
  copyThreads?: number;
  /** Names the staging buffers and errors. */
  label?: string;
}

// Defaults: 4 x 8 MiB per ring keeps several maps in flight while chunks are copied, and bounds staging
// memory to 32 MiB per direction. 'async' (where the native addon is built) copies each chunk on native
// threads off the main thread; 'fill' (one libc memcpy on the main thread) otherwise. bench/transfer.mjs
// sweeps every method, chunk size, slot count and thread count on the target machine.
export const DEFAULT_CHUNK_BYTES = 8 << 20;
export const DEFAULT_SLOTS = 4;
export const DEFAULT_HOST_COPY: HostCopyMethod = nativeHostCopy() ? 'async' : 'fill';

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

/** A chunk that holds a slot and waits for its staging (an upload's host copy) before its device copy. */
interface Staged {
  slot: GPUBuffer;
  chunk: Chunk;
  state: 'staging' | 'ready' | 'failed';
  error?: unknown;
}

/** An asynchronous copy into host memory still running (later overlapping copies wait for it). */
interface HostWrite {
  buffer: ArrayBufferLike;
  start: number;
  end: number;
  done: Promise<void>;
}

export abstract class StagingRing {
  readonly chunkBytes: number;
  readonly slotCount: number;
  readonly hostCopy: HostCopyMethod;
  readonly copyThreads: number;
  readonly label: string;
  protected readonly slots: GPUBuffer[] = [];
  /** Slots ready for a new chunk (for uploads: mapped for writing). */
  protected readonly ready: GPUBuffer[] = [];
  private readonly queue: (Chunk | undefined)[] = [];
  /** Chunks holding a slot whose device copy is not yet recorded, in call order. */
  private readonly staged: Staged[] = [];
  private readonly hostWrites: HostWrite[] = [];
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
    this.copyThreads = options.copyThreads ?? DEFAULT_COPY_THREADS;
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
    if (NATIVE_HOST_COPY_METHODS.includes(this.hostCopy)) {
      const native = requireNativeHostCopy(`${this.label}: hostCopy '${this.hostCopy}'`);
      if (
        !Number.isInteger(this.copyThreads) ||
        this.copyThreads < 1 ||
        this.copyThreads > native.maxThreads
      ) {
        throw new RangeError(
          `${this.label}: copyThreads must be an integer in [1, ${native.maxThreads}]; got ${this.copyThreads}`,
        );
      }
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

  /** Resolves once no chunk is queued, being staged or in flight. */
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
   * Give every free slot a queued chunk: `stage` prepares it (an upload copies its host bytes into the
   * slot, synchronously or on native threads); then `commit` records the device copies of the staged
   * chunks at the head, in call order, into the runtime's encoder, and one submit carries them (and
   * whatever GPU work was recorded before, which the copies are therefore ordered after); then `complete`
   * waits for each slot's map and finishes the chunk.
   */
  protected pump(): void {
    while (this.ready.length && this.queueHead < this.queue.length) {
      const chunk = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined; // let the host views of started chunks be collected
      if (chunk.transfer.failed) continue;
      const entry: Staged = { slot: this.ready.pop()!, chunk, state: 'staging' };
      this.staged.push(entry);
      let staging: Promise<void> | undefined;
      try {
        staging = this.stage(entry.slot, chunk);
      } catch (e) {
        Object.assign(entry, { state: 'failed', error: e });
        continue;
      }
      if (!staging) {
        entry.state = 'ready';
        continue;
      }
      staging.then(
        () => {
          entry.state = 'ready';
          this.commit();
        },
        (e: unknown) => {
          Object.assign(entry, { state: 'failed', error: e });
          this.commit();
        },
      );
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    this.commit();
  }

  /** Record and submit the device copies of the staged chunks at the head of the FIFO. */
  private commit(): void {
    let batch: Staged[] | undefined;
    while (this.staged.length && this.staged[0]!.state !== 'staging') {
      const entry = this.staged.shift()!;
      if (entry.state === 'ready') {
        try {
          this.record(entry.slot, entry.chunk);
          (batch ??= []).push(entry);
          continue;
        } catch (e) {
          entry.error = e;
        }
      }
      // a slot whose staging or recording failed may hold a half-used mapping: it is not reused
      if (entry.slot.mapState === 'mapped') entry.slot.unmap();
      this.fail(entry.chunk.transfer, entry.error);
    }
    if (batch) {
      this.gpu.submit();
      this.inFlight += batch.length;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      for (const { slot, chunk } of batch) {
        chunk.transfer.chunkEnqueued();
        void this.finish(slot, chunk);
      }
    }
    this.notifyIdle();
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
      this.notifyIdle();
    }
  }

  private notifyIdle(): void {
    if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
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
    return this.inFlight === 0 && this.staged.length === 0 && this.queueHead >= this.queue.length;
  }

  /** Whether a chunk's host copy runs off the main thread: 'async', shared host memory, a large chunk. */
  private copiesAsync(host: Uint8Array): boolean {
    return (
      this.hostCopy === 'async' &&
      host.buffer instanceof SharedArrayBuffer &&
      host.byteLength >= ASYNC_COPY_MIN_BYTES
    );
  }

  /**
   * Copy a chunk's bytes from a mapped range into its host view; a Promise when the copy runs off the
   * main thread or has to wait for an earlier copy into overlapping host bytes (so the later download's
   * bytes land last, as they would one after the other).
   */
  protected copyToHost(mapped: ArrayBuffer, chunk: Chunk): Promise<void> | undefined {
    const host = chunk.host;
    const src = new Uint8Array(mapped, 0, chunk.device.bytes);
    const start = host.byteOffset;
    const end = start + host.byteLength;
    const earlier = this.hostWrites
      .filter((w) => w.buffer === host.buffer && w.start < end && start < w.end)
      .map((w) => w.done);
    const copy = (): Promise<void> | undefined => {
      if (this.copiesAsync(host)) {
        return requireNativeHostCopy(this.label).copyAsync(host, src, this.copyThreads);
      }
      copyHostBytes(this.hostCopy, host.buffer, start, mapped, 0, host.byteLength, this.copyThreads);
      return undefined;
    };
    if (!earlier.length && !this.copiesAsync(host)) return copy();
    const write: HostWrite = {
      buffer: host.buffer,
      start,
      end,
      done: Promise.all(earlier).then(copy),
    };
    this.hostWrites.push(write);
    const forget = (): void => {
      this.hostWrites.splice(this.hostWrites.indexOf(write), 1);
    };
    write.done.then(forget, forget);
    return write.done;
  }

  /** Copy a chunk's bytes from its host view into a mapped range; a Promise when off the main thread. */
  protected copyFromHost(mapped: ArrayBuffer, chunk: Chunk): Promise<void> | undefined {
    const host = chunk.host;
    if (this.copiesAsync(host)) {
      const dst = new Uint8Array(mapped, 0, host.byteLength);
      return requireNativeHostCopy(this.label).copyAsync(dst, host, this.copyThreads);
    }
    copyHostBytes(this.hostCopy, mapped, 0, host.buffer, host.byteOffset, host.byteLength, this.copyThreads);
    return undefined;
  }

  /**
   * Prepare a chunk in its slot before its device copy is recorded (uploads: copy the host bytes in);
   * undefined when done at once, else a Promise. Chunks are still recorded in call order.
   */
  protected abstract stage(slot: GPUBuffer, chunk: Chunk): Promise<void> | undefined;
  /** Record the chunk's device copy (synchronously, before the batch's submit). */
  protected abstract record(slot: GPUBuffer, chunk: Chunk): void;
  /** After the submit: wait until the slot is free again, moving the chunk's bytes on the way. */
  protected abstract complete(slot: GPUBuffer, chunk: Chunk): Promise<void>;
  /** Whether a slot can take a new chunk after `complete` (an upload slot whose map failed cannot). */
  protected abstract slotUsable(slot: GPUBuffer): boolean;
}
