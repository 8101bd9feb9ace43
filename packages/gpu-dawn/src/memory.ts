// Every GPU buffer is allocated here: a byte budget (so a 4 GiB card can be simulated on a large one),
// accounting by category with peaks, reuse of freed buffers, and an error naming the largest holders.
import { GpuError } from './device.js';

export const MEMORY_CATEGORIES = [
  'weights',
  'gradients',
  'optimizer',
  'activations',
  'projectors',
  'staging',
  'workspace',
] as const;
export type MemoryCategory = (typeof MEMORY_CATEGORIES)[number];

export class GpuMemoryError extends GpuError {
  override name = 'GpuMemoryError';
}

interface Live {
  label: string;
  category: MemoryCategory;
  bytes: number;
  usage: number;
}

export interface MemoryStats {
  budgetBytes: number;
  /** Bytes of live (in use) buffers. */
  usedBytes: number;
  /** Bytes of freed buffers kept for reuse (they still occupy the GPU). */
  cachedBytes: number;
  /** The most bytes ever held: live plus cached (what the device actually had to provide). */
  peakBytes: number;
  /** The most bytes ever live at once (what a budget must hold; the planner's peakBytes). */
  livePeakBytes: number;
  byCategory: Record<MemoryCategory, { usedBytes: number; peakBytes: number }>;
}

/** Round a request up to a size class so freed buffers can be reused (<= 12.5% waste above 64 KiB). */
export function sizeClass(bytes: number): number {
  if (bytes <= 65536) return Math.max(256, Math.ceil(bytes / 256) * 256);
  const step = 2 ** (Math.floor(Math.log2(bytes)) - 3);
  return Math.ceil(bytes / step) * step;
}

export class GpuMemory {
  private readonly live = new Map<GPUBuffer, Live>();
  private readonly free = new Map<string, GPUBuffer[]>();
  private cached = 0;
  private used = 0;
  private peak = 0;
  private livePeak = 0;
  private readonly catUsed = new Map<MemoryCategory, number>();
  private readonly catPeak = new Map<MemoryCategory, number>();

  constructor(
    private readonly device: GPUDevice,
    /** Budget in bytes; Infinity for none (the device's own limit still applies). */
    readonly budgetBytes = Number.POSITIVE_INFINITY,
    /** Whether commands are recorded but not submitted (then recently freed buffers must live on). */
    private readonly hasUnsubmittedWork: () => boolean = () => true,
    /**
     * Submits what is recorded (and calls markSubmitted), so buffers freed since the last submit may be
     * destroyed: asked when only those stand between an allocation and the budget.
     */
    private readonly submitForRoom?: () => void,
  ) {}

  /** Allocate (or reuse) a buffer of at least `bytes`. */
  allocate(label: string, bytes: number, category: MemoryCategory, usage: number): GPUBuffer {
    if (!(bytes > 0)) throw new RangeError(`allocate '${label}': size must be positive, got ${bytes}`);
    const size = sizeClass(bytes);
    const key = `${usage}:${size}`;
    let buffer = this.free.get(key)?.pop();
    if (buffer) {
      this.cached -= size;
    } else {
      this.ensureRoom(label, size, category);
      if (size > this.device.limits.maxBufferSize) {
        throw new GpuMemoryError(
          `'${label}' needs ${fmt(size)}, over the device's maxBufferSize ${fmt(this.device.limits.maxBufferSize)}`,
        );
      }
      buffer = this.device.createBuffer({ label, size, usage });
    }
    this.live.set(buffer, { label, category, bytes: size, usage });
    this.used += size;
    this.peak = Math.max(this.peak, this.used + this.cached);
    this.livePeak = Math.max(this.livePeak, this.used);
    const c = (this.catUsed.get(category) ?? 0) + size;
    this.catUsed.set(category, c);
    this.catPeak.set(category, Math.max(this.catPeak.get(category) ?? 0, c));
    return buffer;
  }

  /**
   * Buffers released since the last submit: commands recorded but not yet submitted may still use them,
   * so they may be reused (the GPU orders that) but not destroyed until the runtime has submitted.
   */
  private readonly freedSinceSubmit = new Set<GPUBuffer>();

  /** The runtime submitted everything recorded so far: buffers freed before now may be destroyed. */
  markSubmitted(): void {
    this.freedSinceSubmit.clear();
  }

  /** Return a buffer for reuse. */
  release(buffer: GPUBuffer): void {
    const info = this.live.get(buffer);
    if (!info) throw new Error(`release of a buffer this allocator does not own ('${buffer.label}')`);
    this.live.delete(buffer);
    this.used -= info.bytes;
    this.catUsed.set(info.category, (this.catUsed.get(info.category) ?? 0) - info.bytes);
    const key = `${info.usage}:${info.bytes}`;
    const list = this.free.get(key) ?? [];
    list.push(buffer);
    this.free.set(key, list);
    this.cached += info.bytes;
    this.freedSinceSubmit.add(buffer);
  }

  /** Destroy the cached free buffers that no unsubmitted command can still use. */
  trim(): void {
    if (!this.hasUnsubmittedWork()) this.freedSinceSubmit.clear();
    for (const [key, list] of this.free) {
      const keep = list.filter((b) => this.freedSinceSubmit.has(b));
      for (const b of list) {
        if (this.freedSinceSubmit.has(b)) continue;
        b.destroy();
        this.cached -= Number(key.slice(key.indexOf(':') + 1));
      }
      if (keep.length) this.free.set(key, keep);
      else this.free.delete(key);
    }
  }

  stats(): MemoryStats {
    const byCategory = {} as MemoryStats['byCategory'];
    for (const c of MEMORY_CATEGORIES) {
      byCategory[c] = { usedBytes: this.catUsed.get(c) ?? 0, peakBytes: this.catPeak.get(c) ?? 0 };
    }
    return {
      budgetBytes: this.budgetBytes,
      usedBytes: this.used,
      cachedBytes: this.cached,
      peakBytes: this.peak,
      livePeakBytes: this.livePeak,
      byCategory,
    };
  }

  /** The largest live buffers, for error messages and reports. */
  largest(count = 8): { label: string; category: MemoryCategory; bytes: number }[] {
    return [...this.live.values()]
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, count)
      .map(({ label, category, bytes }) => ({ label, category, bytes }));
  }

  /** Destroy everything (live and cached). */
  destroyAll(): void {
    for (const b of this.live.keys()) b.destroy();
    this.live.clear();
    this.freedSinceSubmit.clear();
    this.trim();
    this.used = 0;
  }

  private ensureRoom(label: string, size: number, category: MemoryCategory): void {
    if (this.used + this.cached + size <= this.budgetBytes) return;
    this.trim();
    if (this.used + this.cached + size <= this.budgetBytes) return;
    // buffers freed since the last submit are out of use once it is submitted: a planned live peak that
    // fits the budget must not fail on them (the planner counts live buffers, not this pool)
    if (this.freedSinceSubmit.size && this.submitForRoom) {
      this.submitForRoom();
      this.trim();
      if (this.used + this.cached + size <= this.budgetBytes) return;
    }
    const holders = this.largest()
      .map((h) => `${h.label} (${h.category}) ${fmt(h.bytes)}`)
      .join(', ');
    const cats = MEMORY_CATEGORIES.filter((c) => (this.catUsed.get(c) ?? 0) > 0)
      .map((c) => `${c} ${fmt(this.catUsed.get(c)!)}`)
      .join(', ');
    throw new GpuMemoryError(
      `GPU memory budget exhausted: '${label}' (${category}) needs ${fmt(size)} but ${fmt(this.used)} of ` +
        `${fmt(this.budgetBytes)} is in use [${cats}]. Largest holders: ${holders}`,
    );
  }
}

export function fmt(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} B`;
}
