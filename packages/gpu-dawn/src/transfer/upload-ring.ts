// Host -> device through reused MAP_WRITE staging buffers, never queue.writeBuffer (which segfaults Node
// 20's Dawn for SharedArrayBuffer views): a free staging buffer is kept mapped; the host bytes are copied
// into its mapped range (on native threads off the main thread with hostCopy 'async'), it is unmapped,
// copyBufferToBuffer moves them to the destination, and mapAsync(WRITE) hands the buffer back once the
// GPU has read it.
import type { GpuRuntime } from '../runtime.js';
import { StagingRing, type Chunk, type StagingRingOptions } from './staging-ring.js';
import type { DeviceSide, HostView, Transfer } from './transfer.js';

export interface UploadOptions {
  /** Byte offset into the destination tensor (from its first element) or buffer; a multiple of 4. */
  dstOffsetBytes?: number;
  /** Names the transfer in errors. */
  label?: string;
}

/**
 * Ordering: device copies are recorded in call order (FIFO). The host view is read when a chunk gets a
 * staging buffer, and the device copy recorded once it has been read: on return if `transfer.isEnqueued`
 * (the ring had a free slot for every chunk and copied them on the main thread), else by
 * `await transfer.enqueued`. GPU work recorded through the runtime after that point sees the uploaded
 * bytes; the host view may be overwritten from then on.
 */
export class UploadRing extends StagingRing {
  private constructor(gpu: GpuRuntime, options: StagingRingOptions) {
    super(gpu, 'upload', options, GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC);
  }

  /** Allocate the staging buffers, map them and write every page once (first writes are slow). */
  static async create(gpu: GpuRuntime, options: StagingRingOptions = {}): Promise<UploadRing> {
    const ring = new UploadRing(gpu, options);
    await Promise.all(
      ring.slots.map(async (slot) => {
        await slot.mapAsync(GPUMapMode.WRITE);
        new Uint8Array(slot.getMappedRange()).fill(0);
        // A mapping hands out each range once: remap so record() can take its chunk's range.
        slot.unmap();
        await slot.mapAsync(GPUMapMode.WRITE);
      }),
    );
    gpu.ctx.check(`creating ${ring.label}`);
    ring.ready.push(...ring.slots);
    return ring;
  }

  /** Copy all of `src` into `dst` at `dstOffsetBytes`. */
  upload(src: HostView, dst: DeviceSide, options: UploadOptions = {}): Transfer {
    return this.start(src, dst, options.dstOffsetBytes ?? 0, options.label);
  }

  protected stage(slot: GPUBuffer, chunk: Chunk): Promise<void> | undefined {
    const d = chunk.device;
    const mapped = slot.getMappedRange(0, d.copyBytes);
    // A byte count that is not a multiple of 4 ends at a tensor's padding: write zeros there.
    if (d.copyBytes > d.bytes) new Uint8Array(mapped, d.bytes, d.copyBytes - d.bytes).fill(0);
    return this.copyFromHost(mapped, chunk);
  }

  protected record(slot: GPUBuffer, chunk: Chunk): void {
    const d = chunk.device;
    slot.unmap();
    this.gpu.commandEncoder().copyBufferToBuffer(slot, 0, d.buffer, d.offset, d.copyBytes);
  }

  protected async complete(slot: GPUBuffer): Promise<void> {
    // Resolves once the GPU has finished the copy out of this staging buffer.
    await slot.mapAsync(GPUMapMode.WRITE);
  }

  protected slotUsable(slot: GPUBuffer): boolean {
    return slot.mapState === 'mapped';
  }
}
