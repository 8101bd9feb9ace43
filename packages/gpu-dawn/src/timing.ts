// GPU timing: timestamp queries around compute passes, aggregated per named region (count, total, mean,
// min, max ms) and exported as JSON or Chrome/Perfetto trace events. Recording never waits for the GPU:
// queries written since the last submit are resolved into a readback buffer inside that same submit
// (a runtime submit hook), and the readback is mapped and aggregated whenever it completes.
import { GpuError } from './device.js';
import type { GpuRuntime } from './runtime.js';

export interface GpuTimerOptions {
  /** Compute passes that can be timed before their results are read back (default 1024, at most 2048).
   *  Passes beyond that are not timed; their regions are reported as incomplete. */
  capacityPasses?: number;
  /** Region occurrences kept for trace export, the most recent ones (default 100000). */
  keepOccurrences?: number;
}

export interface RegionStats {
  name: string;
  /** Completed occurrences. */
  count: number;
  /** Compute passes timed across all occurrences. */
  passes: number;
  /** GPU time: the sum of the region's pass durations (copies between passes are not included). */
  totalMs: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
}

export const GPU_TIMING_SCHEMA = 'lsp-offload/gpu-timing@1';

export interface GpuTimingReport {
  schema: typeof GPU_TIMING_SCHEMA;
  adapter: string;
  /** False where the adapter lacks timestamp-query: nothing was timed (see `reason`). */
  supported: boolean;
  reason?: string;
  /** Estimated performance.now() minus GPU clock, in ms (null before any result). */
  clockOffsetMs: number | null;
  /** Passes that found no free query (capacityPasses too small for the work between readbacks). */
  droppedPasses: number;
  /** Occurrences left out of the statistics because a pass was dropped or a readback failed. */
  incompleteOccurrences: number;
  /** Occurrences still waiting for GPU results (call settle() first for a final report). */
  pendingOccurrences: number;
  regions: RegionStats[];
}

/** A Chrome trace event (the JSON Trace Event Format that chrome://tracing and Perfetto read). */
export interface TraceEvent {
  name: string;
  cat?: string;
  ph: 'X' | 'M';
  /** Microseconds, on the performance.now() timeline shifted by `timeOriginMs`. */
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, string | number>;
}

export interface TraceOptions {
  pid?: number;
  tid?: number;
  /** Added to every timestamp, in ms: pass performance.timeOrigin for epoch-based traces (default 0). */
  timeOriginMs?: number;
  /** Names the GPU track (default 'GPU: <adapter>'). */
  threadName?: string;
}

interface Occurrence {
  name: string;
  passes: number;
  /** Passes whose timestamps are not yet read back. */
  pending: number;
  ended: boolean;
  incomplete: boolean;
  gpuNs: number;
  firstBeginNs: number;
  lastEndNs: number;
}

interface Batch {
  firstPair: number;
  pairs: number;
  readback: GPUBuffer;
  /** performance.now() just before the submit that carried the batch. */
  submittedMs: number;
}

/** Runtimes with a live timer: a runtime has one pass timestamp source, so one timer at a time. */
const timedRuntimes = new WeakSet<GpuRuntime>();

const QUERY_BYTES = 8;
const MAX_PAIRS = 2048; // WebGPU caps a query set at 4096 queries

export class GpuTimer {
  readonly supported: boolean;
  readonly reason: string | undefined;
  private readonly capacity: number;
  private readonly keep: number;
  private readonly querySet: GPUQuerySet | undefined;
  private readonly removeHooks: () => void = () => undefined;
  private readonly open: Occurrence[] = [];
  /** Occurrences open when each query pair's pass began, by pair index. */
  private readonly pairOwners: Occurrence[][] = [];
  private nextPair = 0;
  private pairsInUse = 0;
  private unresolvedFirst = 0;
  private unresolvedCount = 0;
  private recorded: Batch | undefined;
  private chain: Promise<void> = Promise.resolve();
  private batchesInFlight = 0;
  private readonly stats = new Map<string, RegionStats>();
  private readonly kept: Occurrence[] = [];
  private keptStart = 0;
  private droppedPasses = 0;
  private incomplete = 0;
  private pending = 0;
  private offsetLowMs = -Infinity;
  private offsetHighMs = Infinity;
  private destroyed = false;

  constructor(
    private readonly gpu: GpuRuntime,
    options: GpuTimerOptions = {},
  ) {
    this.capacity = options.capacityPasses ?? 1024;
    this.keep = options.keepOccurrences ?? 100_000;
    if (!Number.isInteger(this.capacity) || this.capacity < 1 || this.capacity > MAX_PAIRS) {
      throw new RangeError(`GpuTimer: capacityPasses must be 1..${MAX_PAIRS}; got ${this.capacity}`);
    }
    this.supported = gpu.has('timestamp-query');
    if (!this.supported) {
      this.reason =
        `adapter '${gpu.ctx.report.description}' has no 'timestamp-query' feature (or it was disabled): ` +
        'GPU regions are not timed';
      return;
    }
    this.reason = undefined;
    if (timedRuntimes.has(gpu)) {
      throw new GpuError('GpuTimer: this runtime already has a timer; destroy() it before creating another');
    }
    timedRuntimes.add(gpu);
    this.querySet = gpu.device.createQuerySet({
      label: 'gpu-timer',
      type: 'timestamp',
      count: 2 * this.capacity,
    });
    gpu.setPassTimestampSource(() => this.timestampsForPass());
    this.removeHooks = gpu.addSubmitHooks({
      beforeSubmit: () => this.recordResolve(),
      afterSubmit: () => this.startReadback(),
    });
  }

  /** Open a region: compute passes recorded until the matching end() are timed into it (regions nest). */
  begin(name: string): void {
    this.gpu.endPass(); // the region's work starts in a pass of its own
    this.open.push({
      name,
      passes: 0,
      pending: 0,
      ended: false,
      incomplete: false,
      gpuNs: 0,
      firstBeginNs: Infinity,
      lastEndNs: -Infinity,
    });
    if (this.supported) this.pending++;
  }

  /** Close the innermost open region (`name`, if given, must match it). Never waits for the GPU. */
  end(name?: string): void {
    const occ = this.open.at(-1);
    if (!occ) throw new GpuError(`GpuTimer.end(${name ? `'${name}'` : ''}) without an open region`);
    if (name !== undefined && name !== occ.name) {
      throw new GpuError(`GpuTimer.end('${name}') but the innermost open region is '${occ.name}'`);
    }
    this.gpu.endPass();
    this.open.pop();
    occ.ended = true;
    if (this.supported) this.maybeFinish(occ);
  }

  /** Time the GPU work `fn` records; an async `fn` ends its region when its promise settles. */
  region<T>(name: string, fn: () => T): T {
    this.begin(name);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.end(name);
      throw e;
    }
    if (result instanceof Promise) {
      return result.finally(() => this.end(name)) as T;
    }
    this.end(name);
    return result;
  }

  /** Submit pending work and wait until every timed pass so far is aggregated. */
  async settle(): Promise<void> {
    if (!this.supported) return;
    if (this.unresolvedCount) this.gpu.submit();
    while (this.batchesInFlight) await this.chain;
  }

  /** Per-region statistics, in order of first completion. */
  regions(): RegionStats[] {
    return [...this.stats.values()].map((s) => ({ ...s }));
  }

  report(): GpuTimingReport {
    return {
      schema: GPU_TIMING_SCHEMA,
      adapter: this.gpu.ctx.report.description,
      supported: this.supported,
      ...(this.reason !== undefined && { reason: this.reason }),
      clockOffsetMs: this.clockOffsetMs(),
      droppedPasses: this.droppedPasses,
      incompleteOccurrences: this.incomplete,
      pendingOccurrences: this.pending,
      regions: this.regions(),
    };
  }

  toJSON(): GpuTimingReport {
    return this.report();
  }

  /**
   * The kept occurrences as complete ('X') events on one GPU track, spanning first pass begin to last
   * pass end, on the performance.now() timeline (GPU clock shifted by the estimated offset, accurate to
   * about the submit latency), so they merge with CPU-side spans taken with performance.now().
   */
  traceEvents(options: TraceOptions = {}): TraceEvent[] {
    const pid = options.pid ?? 1;
    const tid = options.tid ?? 9000;
    const origin = options.timeOriginMs ?? 0;
    const events: TraceEvent[] = [
      {
        name: 'thread_name',
        ph: 'M',
        ts: 0,
        pid,
        tid,
        args: { name: options.threadName ?? `GPU: ${this.gpu.ctx.report.description}` },
      },
    ];
    const offset = this.clockOffsetMs();
    if (offset === null) return events;
    for (let i = this.keptStart; i < this.kept.length + this.keptStart; i++) {
      const occ = this.kept[i % this.keep]!;
      events.push({
        name: occ.name,
        cat: 'gpu',
        ph: 'X',
        ts: (occ.firstBeginNs / 1e6 + offset + origin) * 1000,
        dur: Math.max(0, occ.lastEndNs - occ.firstBeginNs) / 1000,
        pid,
        tid,
        args: { gpuMs: occ.gpuNs / 1e6, passes: occ.passes },
      });
    }
    return events;
  }

  /** Forget the statistics and kept occurrences (open regions and pending results stay). */
  reset(): void {
    this.stats.clear();
    this.kept.length = 0;
    this.keptStart = 0;
    this.droppedPasses = 0;
    this.incomplete = 0;
  }

  /** Stop timing: remove the runtime hooks and free the query set (pending results are discarded). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (!this.supported) return;
    this.gpu.setPassTimestampSource(undefined);
    this.removeHooks();
    timedRuntimes.delete(this.gpu);
    this.querySet?.destroy();
  }

  // ---- internals --------------------------------------------------------------------------------

  private timestampsForPass(): GPUComputePassTimestampWrites | undefined {
    if (!this.open.length) return undefined;
    if (this.pairsInUse === this.capacity) {
      this.droppedPasses++;
      for (const occ of this.open) occ.incomplete = true;
      return undefined;
    }
    const pair = this.nextPair;
    this.nextPair = (pair + 1) % this.capacity;
    this.pairsInUse++;
    if (this.unresolvedCount === 0) this.unresolvedFirst = pair;
    this.unresolvedCount++;
    const owners = [...this.open];
    this.pairOwners[pair] = owners;
    for (const occ of owners) {
      occ.passes++;
      occ.pending++;
    }
    return {
      querySet: this.querySet!,
      beginningOfPassWriteIndex: 2 * pair,
      endOfPassWriteIndex: 2 * pair + 1,
    };
  }

  /** Before a submit: resolve the pairs written since the last one and copy them to a readback buffer. */
  private recordResolve(): void {
    if (!this.unresolvedCount) return;
    const first = this.unresolvedFirst;
    const count = this.unresolvedCount;
    this.unresolvedCount = 0;
    // The pairs are contiguous in the ring, wrapping at most once.
    const head = Math.min(count, this.capacity - first);
    const tail = count - head;
    const pairBytes = 2 * QUERY_BYTES;
    const tailAt = Math.ceil((head * pairBytes) / 256) * 256; // resolve offsets must be multiples of 256
    const mem = this.gpu.memory;
    const resolve = mem.allocate(
      'gpu-timer.resolve',
      tailAt + tail * pairBytes,
      'staging',
      GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    );
    const readback = mem.allocate(
      'gpu-timer.readback',
      count * pairBytes,
      'staging',
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    );
    const enc = this.gpu.commandEncoder();
    enc.resolveQuerySet(this.querySet!, 2 * first, 2 * head, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, readback, 0, head * pairBytes);
    if (tail) {
      enc.resolveQuerySet(this.querySet!, 0, 2 * tail, resolve, tailAt);
      enc.copyBufferToBuffer(resolve, tailAt, readback, head * pairBytes, tail * pairBytes);
    }
    // Later submits may reuse the resolve buffer: queue order puts them after this copy.
    mem.release(resolve);
    // Taken before queue.submit: a CPU backend may start the work before submit() returns.
    this.recorded = { firstPair: first, pairs: count, readback, submittedMs: performance.now() };
  }

  /** After the submit: map the readback when the GPU is done, in submit order, without waiting here. */
  private startReadback(): void {
    const batch = this.recorded;
    if (!batch) return;
    this.recorded = undefined;
    this.batchesInFlight++;
    const mapped = batch.readback.mapAsync(GPUMapMode.READ, 0, batch.pairs * 2 * QUERY_BYTES);
    mapped.catch(() => undefined); // handled in order below
    this.chain = this.chain.then(async () => {
      let times: BigUint64Array | undefined;
      try {
        await mapped;
        times = new BigUint64Array(batch.readback.getMappedRange(0, batch.pairs * 2 * QUERY_BYTES).slice(0));
        batch.readback.unmap();
      } catch {
        times = undefined; // device lost or destroyed: the batch's occurrences become incomplete
      }
      try {
        this.gpu.memory.release(batch.readback);
      } catch {
        // the runtime was destroyed first and took every buffer with it
      }
      this.absorb(batch, times, performance.now());
      this.batchesInFlight--;
    });
  }

  private absorb(batch: Batch, times: BigUint64Array | undefined, resolvedMs: number): void {
    let minBegin = Infinity;
    let maxEnd = -Infinity;
    for (let k = 0; k < batch.pairs; k++) {
      const pair = (batch.firstPair + k) % this.capacity;
      const owners = this.pairOwners[pair] ?? [];
      this.pairOwners[pair] = [];
      let begin = NaN;
      let end = NaN;
      if (times) {
        begin = Number(times[2 * k]!);
        end = Number(times[2 * k + 1]!);
        minBegin = Math.min(minBegin, begin);
        maxEnd = Math.max(maxEnd, end);
      }
      for (const occ of owners) {
        occ.pending--;
        if (!times) occ.incomplete = true;
        else {
          occ.gpuNs += Math.max(0, end - begin);
          occ.firstBeginNs = Math.min(occ.firstBeginNs, begin);
          occ.lastEndNs = Math.max(occ.lastEndNs, end);
        }
        this.maybeFinish(occ);
      }
    }
    this.pairsInUse -= batch.pairs;
    if (times && batch.pairs) {
      // The batch's passes began after its submit and ended before its readback resolved.
      this.offsetLowMs = Math.max(this.offsetLowMs, batch.submittedMs - minBegin / 1e6);
      this.offsetHighMs = Math.min(this.offsetHighMs, resolvedMs - maxEnd / 1e6);
    }
  }

  private maybeFinish(occ: Occurrence): void {
    if (!occ.ended || occ.pending > 0) return;
    this.pending--;
    if (occ.incomplete) {
      this.incomplete++;
      return;
    }
    const ms = occ.gpuNs / 1e6;
    const s = this.stats.get(occ.name);
    if (!s) {
      this.stats.set(occ.name, {
        name: occ.name,
        count: 1,
        passes: occ.passes,
        totalMs: ms,
        meanMs: ms,
        minMs: ms,
        maxMs: ms,
      });
    } else {
      s.count++;
      s.passes += occ.passes;
      s.totalMs += ms;
      s.meanMs = s.totalMs / s.count;
      s.minMs = Math.min(s.minMs, ms);
      s.maxMs = Math.max(s.maxMs, ms);
    }
    if (occ.passes === 0) return; // no GPU span to draw
    if (this.kept.length < this.keep) this.kept.push(occ);
    else {
      this.kept[this.keptStart] = occ;
      this.keptStart = (this.keptStart + 1) % this.keep;
    }
  }

  private clockOffsetMs(): number | null {
    if (this.offsetLowMs === -Infinity) return null;
    // The lower bound is tight whenever a batch started on an idle GPU; prefer it unless the bounds cross
    // (clock drift or a coarse performance.now()), then split the difference.
    return this.offsetLowMs <= this.offsetHighMs
      ? this.offsetLowMs
      : (this.offsetLowMs + this.offsetHighMs) / 2;
  }
}
