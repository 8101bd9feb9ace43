// What the trainer asks of a training mode's update path, at the points of a step where it can act. The
// offloading modes (lsp, zero) answer with the layer-wise schedule, native with the GPU optimizer.
import type { GradientSink } from '../model/gradient-sink.js';

/**
 * CPU optimizer steps' timing, summed over steps (ms; cpu-wasm's StepTiming, with the wall time the step
 * queue's): per step wallMs = startLatencyMs + workerSpanMs + noticeLatencyMs, so a wall time far above
 * the span was lost waiting for the main thread (to dispatch, or to notice the workers were done), not on
 * the workers.
 */
export interface CpuStepTiming {
  /** CPU optimizer steps. */
  steps: number;
  /** From the step's start to the step queue resuming after it, main thread (workerBusyMs's time). */
  wallMs: number;
  /** First worker task start to last worker task end. */
  workerSpanMs: number;
  /** step() call to the first worker task start. */
  startLatencyMs: number;
  /** Last worker task end to the step queue resuming: the main thread was busy elsewhere. */
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
  /** Summed time of CPU optimizer steps so far (they run on worker threads; 0 without a CPU optimizer). */
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
