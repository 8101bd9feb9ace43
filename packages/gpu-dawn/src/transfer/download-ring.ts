// Device -> host through reused MAP_READ staging buffers: copyBufferToBuffer into a staging buffer,
// mapAsync(READ), one copy from the mapped range straight into the caller's view (on native threads off
// the main thread with hostCopy 'async'), unmap, reuse.
import type { GpuRuntime } from '../runtime.js';
import { StagingRing, type Chunk, type StagingRingOptions } from './staging-ring.js';
import type { DeviceSide, HostView, Transfer } from './transfer.js';

export interface DownloadOptions {
  /** Byte offset into the source tensor (from its first element) or buffer; a multiple of 4. */
  srcOffsetBytes?: number;
  /** Names the transfer in errors. */
  label?: string;
}

/**
 * Ordering: chunks are copied in call order (FIFO). A download reads the source after all GPU work
 * recorded through the runtime before the call. It reads it before any work recorded after the call when
 * `transfer.isEnqueued` is true on return (the ring had a free slot for every chunk); otherwise chunks
 * wait for slots, so do not overwrite the source on the GPU before `await transfer.enqueued`.
 */
export class DownloadRing extends StagingRing {
  private constructor(gpu: GpuRuntime, options: StagingRingOptions) {
    super(gpu, 'download', options, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  }

  /** Allocate the staging buffers and map each once, so no transfer pays for their first use. */
  static async create(gpu: GpuRuntime, options: StagingRingOptions = {}): Promise<DownloadRing> {
    const ring = new DownloadRing(gpu, options);
    await Promise.all(
      ring.slots.map(async (slot) => {
        await slot.mapAsync(GPUMapMode.READ);
        const pages = new Uint8Array(slot.getMappedRange());
        let sum = 0;
        for (let i = 0; i < pages.length; i += 4096) sum += pages[i]!; // touch every page
        slot.unmap();
        return sum;
      }),
    );
    gpu.ctx.check(`creating ${ring.label}`);
    ring.ready.push(...ring.slots);
    return ring;
  }

  /** Copy `dst.byteLength` bytes from `src` (at `srcOffsetBytes`) into `dst`. */
  download(src: DeviceSide, dst: HostView, options: DownloadOptions = {}): Transfer {
    return this.start(dst, src, options.srcOffsetBytes ?? 0, options.label);
  }

  protected stage(): undefined {
    return undefined; // nothing to prepare: the slot only receives the device copy
  }

  protected record(slot: GPUBuffer, chunk: Chunk): void {
    const d = chunk.device;
    this.gpu.commandEncoder().copyBufferToBuffer(d.buffer, d.offset, slot, 0, d.copyBytes);
  }

  protected async complete(slot: GPUBuffer, chunk: Chunk): Promise<void> {
    await slot.mapAsync(GPUMapMode.READ, 0, chunk.device.copyBytes);
    try {
      // the mapped range stays mapped (and referenced) until an off-thread copy has finished
      await this.copyToHost(slot.getMappedRange(0, chunk.device.copyBytes), chunk);
    } finally {
      slot.unmap();
    }
  }

  protected slotUsable(slot: GPUBuffer): boolean {
    return slot.mapState === 'unmapped';
  }
}
