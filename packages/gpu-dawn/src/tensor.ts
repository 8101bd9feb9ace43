// A contiguous GPU tensor: a storage buffer (or a range of one), a dtype and a shape.
import { DTYPE_BYTES, type DType } from './dtype.js';

export type Shape = readonly number[];

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new RangeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** Bytes a tensor of this dtype and element count occupies, rounded up to 4 (WGSL arrays are 4-byte words). */
export function storageBytes(dtype: DType, numel: number): number {
  return Math.max(4, Math.ceil((numel * DTYPE_BYTES[dtype]) / 4) * 4);
}

export class Tensor {
  readonly numel: number;
  private released = false;

  constructor(
    readonly buffer: GPUBuffer,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly label: string,
    /** Byte offset of element 0 inside `buffer` (multiple of the storage offset alignment). */
    readonly byteOffset = 0,
    private readonly onRelease?: (t: Tensor) => void,
  ) {
    this.numel = numelOf(shape);
  }

  get byteLength(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }

  /** Bytes bound for this tensor (4-byte rounded). */
  get bindingSize(): number {
    return storageBytes(this.dtype, this.numel);
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** A binding resource covering exactly this tensor. */
  binding(): GPUBufferBinding {
    if (this.released) throw new Error(`tensor '${this.label}' used after release()`);
    return { buffer: this.buffer, offset: this.byteOffset, size: this.bindingSize };
  }

  /** Same storage, another shape with the same element count. */
  view(shape: Shape, label = this.label): Tensor {
    if (numelOf(shape) !== this.numel) {
      throw new Error(`cannot view '${this.label}' [${this.shape.join(', ')}] as [${shape.join(', ')}]`);
    }
    return new Tensor(this.buffer, this.dtype, shape, label, this.byteOffset);
  }

  /** Give the storage back to its allocator (views must not be released). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease?.(this);
  }

  toString(): string {
    return `${this.label}: ${this.dtype}[${this.shape.join(', ')}]`;
  }
}
