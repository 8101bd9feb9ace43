// The planner's unit: GPU buffers as GpuMemory would hold them (size-classed, by category and by the
// usage that decides which freed buffers a new request may reuse).
import { sizeClass, storageBytes, type DType, type MemoryCategory } from '@lsp-offload/gpu-dawn';

/** Buffers of different usages never reuse each other's freed storage (GpuMemory keys its cache by usage). */
export type BufferUsage = 'storage' | 'download' | 'upload' | 'query-resolve';

export interface PlannedBuffer {
  /** What it is; per-layer buffers name the layer `*` so they group. */
  readonly label: string;
  readonly category: MemoryCategory;
  readonly usage: BufferUsage;
  /** Bytes of ONE buffer after sizeClass(), i.e. what GpuMemory accounts for it. */
  readonly bytes: number;
  /** How many such buffers are alive together. */
  readonly count: number;
  /** Storage tensors: the bytes a kernel binds (before sizeClass), checked against the adapter's limit. */
  readonly bindingBytes?: number;
}

/** A tensor allocated through GpuRuntime.tensor/upload/scratch (storage usage), `count` times. */
export function tensorBuffer(
  label: string,
  category: MemoryCategory,
  dtype: DType,
  shape: readonly number[],
  count = 1,
): PlannedBuffer {
  const numel = shape.reduce((a, b) => a * b, 1);
  const bindingBytes = storageBytes(dtype, numel);
  return { label, category, usage: 'storage', bytes: sizeClass(bindingBytes), count, bindingBytes };
}

/** The same buffers `times` over (e.g. one per layer). */
export function times(buffers: readonly PlannedBuffer[], n: number): PlannedBuffer[] {
  if (n <= 0) return [];
  return buffers.map((b) => ({ ...b, count: b.count * n }));
}

export function totalBytes(buffers: readonly PlannedBuffer[]): number {
  let sum = 0;
  for (const b of buffers) sum += b.bytes * b.count;
  return sum;
}

/** A per-layer parameter name with its layer number replaced by `*` (so 22 layers group as one line). */
export function layerPattern(name: string): string {
  return name.replace(/\.\d+\./, '.*.');
}

/** Merge buffers that are the same thing (label, category, usage, size) into one entry with a count. */
export function mergeBuffers(buffers: readonly PlannedBuffer[]): PlannedBuffer[] {
  const merged = new Map<string, PlannedBuffer>();
  for (const b of buffers) {
    if (b.count <= 0) continue;
    const key = `${b.label}|${b.category}|${b.usage}|${b.bytes}`;
    const seen = merged.get(key);
    merged.set(key, seen ? { ...seen, count: seen.count + b.count } : b);
  }
  return [...merged.values()];
}
