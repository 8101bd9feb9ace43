// Kernel parameters: small uniform blocks packed into one ring buffer, one 256-byte slot per dispatch.
// queue.writeBuffer is ordered with submits on the queue timeline, so a slot may be rewritten as soon as
// the command buffer that read it has been submitted: the ring resets at every submit.

/** Builds a uniform block of 4-byte fields (u32 / i32 / f32), padded to 16 bytes. */
export class Params {
  private readonly view = new DataView(new ArrayBuffer(256));
  private bytes = 0;

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 param out of range: ${v}`);
    this.view.setUint32(this.bytes, v, true);
    this.bytes += 4;
    return this;
  }
  i32(v: number): this {
    this.view.setInt32(this.bytes, v, true);
    this.bytes += 4;
    return this;
  }
  f32(v: number): this {
    this.view.setFloat32(this.bytes, v, true);
    this.bytes += 4;
    return this;
  }
  get byteLength(): number {
    return Math.max(16, Math.ceil(this.bytes / 16) * 16);
  }
  get buffer(): ArrayBuffer {
    return this.view.buffer as ArrayBuffer;
  }
}

export const UNIFORM_SLOT_BYTES = 256;

export class UniformRing {
  private buffer: GPUBuffer;
  private slots: number;
  private next = 0;
  private readonly retired: GPUBuffer[] = [];

  constructor(
    private readonly device: GPUDevice,
    initialSlots = 1024,
  ) {
    this.slots = initialSlots;
    this.buffer = this.create();
  }

  /** Copy `params` into a fresh slot and return a binding for it. */
  push(params: Params): GPUBufferBinding {
    if (this.next >= this.slots) {
      // Out of slots inside one submit: older slots are still referenced, so switch to a bigger buffer
      // and keep the old one alive until the next reset.
      this.retired.push(this.buffer);
      this.slots *= 2;
      this.buffer = this.create();
      this.next = 0;
    }
    const offset = this.next++ * UNIFORM_SLOT_BYTES;
    this.device.queue.writeBuffer(this.buffer, offset, params.buffer, 0, params.byteLength);
    return { buffer: this.buffer, offset, size: params.byteLength };
  }

  /** Call after a submit: every slot written so far has been consumed in queue order. */
  reset(): void {
    this.next = 0;
    for (const b of this.retired.splice(0)) b.destroy();
  }

  destroy(): void {
    this.reset();
    this.buffer.destroy();
  }

  private create(): GPUBuffer {
    return this.device.createBuffer({
      label: 'kernel-params',
      size: this.slots * UNIFORM_SLOT_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }
}
