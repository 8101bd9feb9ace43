// Tensor storage in shared memories: a bump allocator per memory, and a set of memories that grows as
// tensors arrive (one wasm32 memory holds at most 4 GiB; optimizer state often needs more).
import {
  ALIGN_BYTES,
  MAX_MEMORY_BYTES,
  PAGE_BYTES,
  STAGGER_BYTES,
  STAGGER_MIN_BYTES,
  alignUp,
} from './layout.js';

/** One shared memory whose bytes from `reserved` on are handed out in 64-byte-aligned blocks. */
export class MemoryArena {
  readonly memory: WebAssembly.Memory;
  private top: number;

  constructor(
    readonly id: number,
    /** Bytes at the start the arena never hands out (module data, worker stacks). */
    readonly reservedBytes: number,
    readonly capBytes: number,
  ) {
    this.top = reservedBytes;
    this.memory = new WebAssembly.Memory({
      initial: Math.ceil(reservedBytes / PAGE_BYTES),
      maximum: capBytes / PAGE_BYTES,
      shared: true,
    });
  }

  get usedBytes(): number {
    return this.top - this.reservedBytes;
  }

  /**
   * Allocate one aligned block per size (arrays used together), all or none; grows the memory; null
   * when the cap is reached. Large arrays are followed by a gap so their starts do not alias.
   */
  tryAlloc(sizes: readonly number[]): number[] | null {
    let top = this.top;
    const offsets = sizes.map((s) => {
      const at = alignUp(top);
      top = at + s + (s >= STAGGER_MIN_BYTES ? STAGGER_BYTES : 0);
      return at;
    });
    if (top > this.capBytes) return null;
    const have = this.memory.buffer.byteLength;
    if (top > have) {
      try {
        this.memory.grow(Math.ceil((top - have) / PAGE_BYTES));
      } catch (e) {
        throw new RangeError(
          `could not grow shared memory ${this.id} to ${top} bytes: ${(e as Error).message}`,
          { cause: e },
        );
      }
    }
    this.top = top;
    return offsets;
  }
}

export interface MemorySetOptions {
  /** Bytes per memory, a multiple of 64 KiB, at most 4 GiB. */
  capBytes: number;
  /** Bytes at the start of every memory the arena must not touch (module data, worker stacks). */
  reservedBytes: number;
  /** Called when a memory is created, so workers can be told about it. */
  onCreate?: (arena: MemoryArena) => void;
}

export class MemorySet {
  readonly arenas: MemoryArena[] = [];

  constructor(private readonly options: MemorySetOptions) {
    const { capBytes, reservedBytes } = options;
    if (!Number.isInteger(capBytes) || capBytes % PAGE_BYTES !== 0 || capBytes > MAX_MEMORY_BYTES)
      throw new RangeError(
        `memoryCapBytes must be a multiple of 64 KiB and at most 4 GiB, got ${capBytes} bytes`,
      );
    if (capBytes < reservedBytes + PAGE_BYTES)
      throw new RangeError(
        `memoryCapBytes ${capBytes} leaves no room for tensors: each memory reserves ${reservedBytes} bytes ` +
          `for the module and worker stacks`,
      );
  }

  /** The most elements an allocation group with these bytes per element can hold in one empty memory. */
  maxElements(bytesPerElement: readonly number[], granule: number): number {
    const perElement = bytesPerElement.reduce((a, b) => a + b, 0);
    const room =
      this.options.capBytes - alignUp(this.options.reservedBytes) - bytesPerElement.length * ALIGN_BYTES;
    let n = Math.floor(room / perElement);
    // Large arrays are followed by a gap (see tryAlloc): count it for every array when any needs it.
    if (Math.max(...bytesPerElement) * n >= STAGGER_MIN_BYTES)
      n = Math.floor((room - bytesPerElement.length * STAGGER_BYTES) / perElement);
    return Math.max(0, Math.floor(n / granule) * granule);
  }

  /** Place one group of arrays (all in one memory): first fit over the memories, else a new one. */
  alloc(sizes: readonly number[]): { arena: MemoryArena; offsets: number[] } {
    for (const arena of this.arenas) {
      const offsets = arena.tryAlloc(sizes);
      if (offsets) return { arena, offsets };
    }
    const arena = new MemoryArena(this.arenas.length, this.options.reservedBytes, this.options.capBytes);
    const offsets = arena.tryAlloc(sizes);
    if (!offsets)
      throw new RangeError(
        `cannot place ${sizes.reduce((a, b) => a + b, 0)} bytes in one memory of ${this.options.capBytes} bytes`,
      );
    this.arenas.push(arena);
    this.options.onCreate?.(arena);
    return { arena, offsets };
  }
}
