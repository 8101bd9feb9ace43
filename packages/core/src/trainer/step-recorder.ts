// What is recorded about the step in progress, by the trainer and by the schedule it drives: the counters
// StepMetrics reports (bytes each way, waits, where updates were applied, main-thread idle time), the
// trace of a traced step, and the main thread's spans (recording GPU work) and waits.
import { StepTrace, TRACE_THREADS } from './trace.js';

export interface StepCounters {
  bytesToHost: number;
  bytesToDevice: number;
  waitForUpdatesMs: number;
  appliedInBackward: number;
  appliedBeforeForward: number;
  /** Main-thread time spent waiting (for the GPU, transfers, CPU updates). */
  idleMs: number;
}

function freshCounters(): StepCounters {
  return {
    bytesToHost: 0,
    bytesToDevice: 0,
    waitForUpdatesMs: 0,
    appliedInBackward: 0,
    appliedBeforeForward: 0,
    idleMs: 0,
  };
}

export class StepRecorder {
  /** The step in progress (or the last one). */
  step = 0;
  counters = freshCounters();
  /** The trace of the step in progress when it is traced. */
  trace: StepTrace | undefined;
  private segmentName: string | undefined;
  private segmentStart = 0;

  /** Step `step` begins: fresh counters, traced when `trace` is given. */
  begin(step: number, trace: StepTrace | undefined): void {
    this.step = step;
    this.counters = freshCounters();
    this.trace = trace;
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
