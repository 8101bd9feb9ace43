// One host <-> device transfer: its completion promises and the validation of its device-side range.
import { GpuError } from '../device.js';
import { Tensor } from '../tensor.js';

/** Host memory on the other side of a transfer: any typed array or DataView, over an ArrayBuffer, a
 *  SharedArrayBuffer or a shared WebAssembly.Memory's buffer. Its whole byte range is transferred. */
export type HostView = ArrayBufferView;

/** Device memory on the other side of a transfer: a tensor (offsets are relative to its first element) or
 *  a raw buffer. */
export type DeviceSide = Tensor | GPUBuffer;

export type TransferDirection = 'download' | 'upload';

/** Error of a transfer (bad arguments, or a GPU/map failure), naming the transfer. */
export class TransferError extends GpuError {
  override name = 'TransferError';
}

/**
 * A transfer in flight. Await it (it is PromiseLike) for `done`.
 * - `enqueued`: every chunk's device copy has been recorded and submitted; for an upload the host view has
 *   also been fully read (it may be overwritten). GPU work recorded after this point is ordered after the
 *   transfer's copies. Already true when the call returns if the ring had free slots for every chunk.
 * - `done`: download: the bytes are in the host view; upload: the device copy has executed.
 */
export class Transfer implements PromiseLike<void> {
  readonly enqueued: Promise<void>;
  readonly done: Promise<void>;
  isEnqueued = false;
  isDone = false;
  error: Error | undefined;
  private chunksToEnqueue: number;
  private chunksToFinish: number;
  private resolveEnqueued!: () => void;
  private rejectEnqueued!: (e: Error) => void;
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;

  constructor(
    readonly direction: TransferDirection,
    readonly label: string,
    readonly bytes: number,
    chunks: number,
  ) {
    this.enqueued = new Promise<void>((res, rej) => {
      this.resolveEnqueued = res;
      this.rejectEnqueued = rej;
    });
    this.done = new Promise<void>((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    // A transfer nobody awaits must not crash the process with an unhandled rejection: the ring keeps the
    // failure and throws it from its next call instead.
    this.enqueued.catch(() => undefined);
    this.done.catch(() => undefined);
    this.chunksToEnqueue = chunks;
    this.chunksToFinish = chunks;
    if (chunks === 0) {
      this.chunkEnqueued(0);
      this.chunkDone(0);
    }
  }

  then<A = void, B = never>(
    onDone?: ((value: void) => A | PromiseLike<A>) | null,
    onError?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): PromiseLike<A | B> {
    return this.done.then(onDone, onError);
  }

  get failed(): boolean {
    return this.error !== undefined;
  }

  /** @internal Called by the ring as chunks progress. */
  chunkEnqueued(count = 1): void {
    this.chunksToEnqueue -= count;
    if (this.chunksToEnqueue === 0 && !this.failed) {
      this.isEnqueued = true;
      this.resolveEnqueued();
    }
  }

  /** @internal */
  chunkDone(count = 1): void {
    this.chunksToFinish -= count;
    if (this.chunksToFinish === 0 && !this.failed) {
      this.isDone = true;
      this.resolveDone();
    }
  }

  /** @internal */
  fail(error: Error): void {
    if (this.failed) return;
    this.error = error;
    this.rejectEnqueued(error);
    this.rejectDone(error);
  }
}

/** A validated device-side byte range. `copyBytes` is `bytes` rounded up to 4 (copies move whole words). */
export interface DeviceRange {
  buffer: GPUBuffer;
  offset: number;
  bytes: number;
  copyBytes: number;
  name: string;
}

/**
 * Check a transfer's device range: offsets are multiples of 4, the copied words stay inside the tensor
 * (or buffer), and the buffer has the copy usage the direction needs. A byte count that is not a
 * multiple of 4 is allowed where the rounded-up words are padding: any download, and an upload that
 * ends exactly at a tensor's last element (tensor storage is padded to 4 bytes).
 */
export function deviceRange(
  direction: TransferDirection,
  label: string,
  side: DeviceSide,
  offsetBytes: number,
  bytes: number,
): DeviceRange {
  const isTensor = side instanceof Tensor;
  const name = isTensor ? `tensor '${side.label}'` : `buffer '${side.label || '(unlabelled)'}'`;
  const fail = (msg: string): never => {
    throw new TransferError(`${direction} '${label}': ${msg}`);
  };
  if (!Number.isInteger(offsetBytes) || offsetBytes < 0 || offsetBytes % 4 !== 0) {
    fail(`device offset ${offsetBytes} into ${name} must be a non-negative multiple of 4`);
  }
  if (isTensor && side.isReleased) fail(`${name} was released`);
  const buffer = isTensor ? side.buffer : side;
  const base = isTensor ? side.byteOffset : 0;
  const limit = isTensor ? side.bindingSize : side.size;
  const copyBytes = Math.ceil(bytes / 4) * 4;
  if (offsetBytes + copyBytes > limit) {
    fail(
      `${bytes} bytes at device offset ${offsetBytes} overrun ${name} (${limit} bytes` +
        `${isTensor ? `, ${side.dtype}[${side.shape.join(', ')}]` : ''})`,
    );
  }
  if (direction === 'upload' && copyBytes !== bytes) {
    const endsAtTensorEnd = isTensor && offsetBytes + bytes === side.byteLength;
    if (!endsAtTensorEnd) {
      fail(
        `${bytes} bytes is not a multiple of 4: copies move whole 4-byte words, which would overwrite ` +
          `${copyBytes - bytes} byte(s) after the range in ${name} (allowed only where a tensor's data ends)`,
      );
    }
  }
  const usage = direction === 'download' ? GPUBufferUsage.COPY_SRC : GPUBufferUsage.COPY_DST;
  if ((buffer.usage & usage) === 0) {
    fail(`${name} lacks ${direction === 'download' ? 'COPY_SRC' : 'COPY_DST'} usage`);
  }
  return { buffer, offset: base + offsetBytes, bytes, copyBytes, name };
}

/** Check that `view` is an ArrayBufferView (typed array or DataView) and return it as bytes. */
export function hostBytes(direction: TransferDirection, label: string, view: HostView): Uint8Array {
  if (!ArrayBuffer.isView(view)) {
    throw new TransferError(`${direction} '${label}': the host side must be a typed array or DataView`);
  }
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}
