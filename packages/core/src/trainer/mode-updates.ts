// What the trainer asks of a training mode's update path, at the points of a step where it can act. The
// offloading modes (lsp, zero) answer with the layer-wise schedule, native with the GPU optimizer.
import type { GradientSink } from '../model/gradient-sink.js';

/**
 * CPU optimizer steps' timing, running totals (ms; cpu-wasm's StepTiming, with the wall time the step
 * queue's). Steps overlap (they run at once on the workers' stream), so each figure is a union over the
 * steps, counted once: wallMs = startLatencyMs + workerSpanMs + noticeLatencyMs, and a wall time far above
 * the span was lost waiting for the main thread (to call, or to notice the workers were done), not on
 * the workers.
 */
export interface CpuStepTiming {
  /** CPU optimizer steps. */
  steps: number;
  /** Time with a step in flight (step call to the queue resuming after it), main thread (workerBusyMs). */
  wallMs: number;
  /** Time some step's workers were between its first piece's start and its last piece's end. */
  workerSpanMs: number;
  /** Time steps waited for their first piece to start while no worker ran a step. */
  startLatencyMs: number;
  /** The rest of wallMs: steps in flight, workers done, the main thread busy elsewhere. */
  noticeLatencyMs: number;
  /** Worker task time summed over threads. */
  threadBusyMs: number;
}

export const NO_CPU_STEPS: Readonly<CpuStepTiming> = Object.freeze({
  steps: 0,
  wallMs: 0,
  workerSpanMs: 0,
  startLatencyMs: 0,
  noticeLatencyMs: 0,
  threadBusyMs: 0,
});

/** now - before, field by field: the steps that ended between two readings of the running totals. */
export function cpuStepTimingSince(now: CpuStepTiming, before: CpuStepTiming): CpuStepTiming {
  return {
    steps: now.steps - before.steps,
    wallMs: now.wallMs - before.wallMs,
    workerSpanMs: now.workerSpanMs - before.workerSpanMs,
    startLatencyMs: now.startLatencyMs - before.startLatencyMs,
    noticeLatencyMs: now.noticeLatencyMs - before.noticeLatencyMs,
    threadBusyMs: now.threadBusyMs - before.threadBusyMs,
  };
}

export interface ModeUpdates {
  /**
   * Where the model's backward hands the gradients. With `accumulate` set (gradient accumulation: the
   * micro-batches after the first) it adds into the gradients of the step not yet taken.
   */
  readonly sink: GradientSink & { accumulate: boolean; microBatch: number };
  /**
   * Time with a CPU optimizer step in flight so far (they run on worker threads, several at once: their
   * union; 0 without a CPU optimizer).
   */
  readonly cpuBusyMs: number;
  /** The same steps seen from the worker threads (running totals; NO_CPU_STEPS without a CPU optimizer). */
  readonly cpuStepTiming: Readonly<CpuStepTiming>;
  /**
   * A step begins over `microBatches` micro-batches: it steps their mean gradient (clipped if asked).
   * `inputIds` are their token ids (the embedding rows the step touches).
   */
  beginStep(microBatches: number, inputIds?: readonly ArrayLike<number>[]): void;
  /** Right before a unit's forward (the embeddings, a block, the head): its pending update must be in. */
  beforeForward(unit: number): Promise<void>;
  /** Block `layer`'s backward has been recorded (blocks finish last to first). */
  afterBlockBackward(layer: number): Promise<void>;
  /** The whole backward of step `step` has been recorded: start (or record) the remaining updates. */
  afterBackward(step: number): Promise<void>;
  /** The global norm of this step's mean gradient before clipping; null unless clipping is on. */
  gradNorm(): Promise<number | null>;
  /** The step failed: whatever waits on it (CPU steps waiting for the clipping factor) fails too. */
  failStep(e: unknown): void;
  /** Apply every pending update and wait for the GPU (before evaluation, saving and exit). */
  flush(): Promise<void>;
  /** Resolves once every update started so far has done its CPU part (failures are left to flush). */
  settled(): Promise<void>;
  destroy(): Promise<void>;
}
