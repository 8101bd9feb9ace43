// What the trainer asks of a training mode's update path, at the points of a step where it can act. The
// offloading modes (lsp, zero) answer with the layer-wise schedule, native with the GPU optimizer.
import type { GradientSink } from '../model/gradient-sink.js';

export interface ModeUpdates {
  /**
   * Where the model's backward hands the gradients. With `accumulate` set (gradient accumulation: the
   * micro-batches after the first) it adds into the gradients of the step not yet taken.
   */
  readonly sink: GradientSink & { accumulate: boolean; microBatch: number };
  /** Summed time of CPU optimizer steps so far (they run on worker threads; 0 without a CPU optimizer). */
  readonly cpuBusyMs: number;
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
