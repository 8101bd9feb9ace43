// Tensors larger than one storage binding may hold (maxStorageBufferBindingSize: 128 MiB on llvmpipe,
// 2 GiB on an H200; a 128k-vocab x 4096 f32 embedding is 2 GiB) live in one buffer (maxBufferSize is far
// larger) and are bound in blocks: views of consecutive rows or elements, each within the runtime's
// binding limit and starting at an offset the adapter accepts (minStorageBufferOffsetAlignment). A tensor
// that fits is its own single block, so callers need no special case.
import { GpuError } from './device.js';
import { DTYPE_BYTES } from './dtype.js';
import type { GpuRuntime } from './runtime.js';
import { Tensor } from './tensor.js';

export interface RowBlock {
  /** First row of the block in the whole tensor. */
  readonly rowStart: number;
  readonly rows: number;
  /** A view of those rows: [rows, ...the tensor's other dimensions]. */
  readonly tensor: Tensor;
}

export interface ElementBlock {
  readonly start: number;
  readonly count: number;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

const lcm = (a: number, b: number): number => (a / gcd(a, b)) * b;

/** Elements `start .. start + count` of `t` as a 1-D view (start * element size must be aligned). */
export function sliceElements(t: Tensor, start: number, count: number): Tensor {
  if (start === 0 && count === t.numel) return t;
  return new Tensor(
    t.buffer,
    t.dtype,
    [count],
    `${t.label}[${start}:${start + count}]`,
    t.byteOffset + start * DTYPE_BYTES[t.dtype],
  );
}

/**
 * `t` (shape [rows, ...]) as blocks of whole rows, each at most `maxBytes` (default: the runtime's
 * binding limit): one block when it fits.
 */
export function rowBlocks(gpu: GpuRuntime, t: Tensor, maxBytes = gpu.maxBindingBytes): RowBlock[] {
  const rows = t.shape[0] ?? 1;
  if (t.bindingSize <= maxBytes || rows === 0) return [{ rowStart: 0, rows, tensor: t }];
  const rowElements = t.numel / rows;
  const rowBytes = rowElements * DTYPE_BYTES[t.dtype];
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const alignRows = align / gcd(rowBytes, align);
  const perBlock = Math.floor(Math.floor(maxBytes / rowBytes) / alignRows) * alignRows;
  if (perBlock < 1)
    throw new GpuError(
      `'${t}': ${alignRows} row(s) of ${rowBytes} bytes (the fewest that start at an aligned offset) do not fit ` +
        `one binding of ${maxBytes} bytes`,
    );
  const out: RowBlock[] = [];
  for (let r0 = 0; r0 < rows; r0 += perBlock) {
    const n = Math.min(perBlock, rows - r0);
    const view = new Tensor(
      t.buffer,
      t.dtype,
      [n, ...t.shape.slice(1)],
      `${t.label}[rows ${r0}:${r0 + n}]`,
      t.byteOffset + r0 * rowBytes,
    );
    out.push({ rowStart: r0, rows: n, tensor: view });
  }
  return out;
}

/**
 * Element ranges over `count` elements such that the slice of every tensor of `tensors` fits one binding
 * and starts aligned; starts are multiples of `unit` (e.g. a broadcast row's length). One range when all
 * fit.
 */
export function elementBlocks(
  gpu: GpuRuntime,
  tensors: readonly Tensor[],
  count: number,
  unit = 1,
): ElementBlock[] {
  const maxBytes = gpu.maxBindingBytes;
  if (tensors.every((t) => t.bindingSize <= maxBytes)) return [{ start: 0, count }];
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  let step = unit;
  let widest = 1;
  for (const t of tensors) {
    const bytes = DTYPE_BYTES[t.dtype];
    step = lcm(step, align / gcd(bytes, align));
    widest = Math.max(widest, bytes);
  }
  const perBlock = Math.floor(Math.floor(maxBytes / widest) / step) * step;
  if (perBlock < 1)
    throw new GpuError(`blocks of ${step} elements (aligned) do not fit one binding of ${maxBytes} bytes`);
  const out: ElementBlock[] = [];
  for (let start = 0; start < count; start += perBlock)
    out.push({ start, count: Math.min(perBlock, count - start) });
  return out;
}

/** `t` as 1-D slices that each fit one binding (itself when it fits). */
export function elementSlices(gpu: GpuRuntime, t: Tensor): Tensor[] {
  return elementBlocks(gpu, [t], t.numel).map((b) => sliceElements(t, b.start, b.count));
}
