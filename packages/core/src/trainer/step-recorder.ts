// What is recorded about the step in progress, by the trainer and by the schedule it drives: the counters
// StepMetrics reports (bytes each way, waits, where updates were applied, main-thread idle time), the
// trace of a traced step, and the main thread's spans (recording GPU work) and waits.
import type { OffloadPiece, TransferRates } from './offload-critical-path.js';
import { StepTrace, TRACE_THREADS } from './trace.js';

/** What the bytes each way are (the per-kind counts of bench and the metrics). */
export type TransferKind = 'S' | 'gradients' | 'embedding rows' | 'headers' | 'D' | 'parameters';

export interface StepCounters {
  bytesToHost: number;
  bytesToDevice: number;
  waitForUpdatesMs: number;
  appliedInBackward: number;
  appliedBeforeForward: number;
  /** Main-thread time spent waiting (for the GPU, transfers, CPU updates). */
  idleMs: number;
  /** bytesToHost and bytesToDevice by what travels. */
  bytesByKind: Partial<Record<TransferKind, { toHost: number; toDevice: number }>>;
}

function freshCounters(): StepCounters {
  return {
    bytesToHost: 0,
    bytesToDevice: 0,
    waitForUpdatesMs: 0,
    appliedInBackward: 0,
    appliedBeforeForward: 0,
    idleMs: 0,
    bytesByKind: {},
  };
}

export class StepRecorder {
  /** The step in progress (or the last one). */
  step = 0;
  counters = freshCounters();
  /** The trace of the step in progress when it is traced. */
  trace: StepTrace | undefined;
  /**
   * The pieces of the updates the step in progress started, in the order they started (their CPU
   * times are filled in as their steps run, possibly during the next step), and those of the step
   * before (complete by the time this step's forward has run).
   */
  offloadPieces: OffloadPiece[] = [];
  previousOffloadPieces: OffloadPiece[] | undefined;
  /** The staging rings' measured throughput (offloading modes). */
  transferRates: TransferRates | undefined;
  private segmentName: string | undefined;
  private segmentStart = 0;

  /** Step `step` begins: fresh counters, traced when `trace` is given. */
  begin(step: number, trace: StepTrace | undefined): void {
    this.step = step;
    this.counters = freshCounters();
    this.trace = trace;
    this.previousOffloadPieces = this.offloadPieces.length ? this.offloadPieces : undefined;
    this.offloadPieces = [];
  }

  /** Count bytes moved one way as one kind. */
  countBytes(kind: TransferKind, way: 'toHost' | 'toDevice', bytes: number): void {
    const k = (this.counters.bytesByKind[kind] ??= { toHost: 0, toDevice: 0 });
    k[way] += bytes;
    if (way === 'toHost') this.counters.bytesToHost += bytes;
    else this.counters.bytesToDevice += bytes;
  }

  /** Close the open main-thread span (recording) and open the next one. */
  segment(next: string | undefined): void {
    const now = performance.now();
    if (this.trace && this.segmentName)
      this.trace.add(this.segmentName, TRACE_THREADS.main, this.segmentStart, now);
    this.segmentName = next;
    this.segmentStart = now;
  }

  /** Await something the main thread cannot continue without; the time counts as main-thread idle. */
  async waiting<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const open = this.segmentName;
    this.segment(undefined);
    try {
      return await fn();
    } finally {
      const t1 = performance.now();
      this.counters.idleMs += t1 - t0;
      this.trace?.add(`wait: ${what}`, TRACE_THREADS.main, t0, t1);
      this.segment(open);
    }
  }
}
