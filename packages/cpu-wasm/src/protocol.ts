// The message a worker receives: a flat list of kernel calls over byte offsets in shared memories.
// Flat Float64Arrays keep a task cheap to post however many tensors a step touches.

/** Kernel opcodes (the piece's first field). */
export const OP = {
  ADAMW_F32G: 1,
  ADAMW_F16G: 2,
  STEP_F32G_F32O: 3,
  STEP_F32G_F16O: 4,
  STEP_F16G_F32O: 5,
  STEP_F16G_F16O: 6,
  SUM_SQUARES_F32: 7,
  SUM_SQUARES_F16: 8,
  COUNT_NONFINITE_F32: 9,
  COUNT_NONFINITE_F16: 10,
  COPY_F32: 11,
  F16_TO_F32: 12,
  F32_TO_F16: 13,
  AXPY_F32: 14,
  ADAMW_F32G_F16P: 15,
  ADAMW_F16G_F16P: 16,
} as const;
export type Op = (typeof OP)[keyof typeof OP];

/**
 * One piece: [op, memoryId, length, a, b, c, d, hyperIndex, e]. a..d (and e) are byte offsets whose
 * meaning depends on op: AdamW (p, g, m, v); AdamW with an fp16 copy of the new params (p, g, m, v,
 * and e the fp16 copy); step-only (g, m, v, out); reductions (x); copy and conversions (src, dst);
 * axpy (y, x) with the scalar in hyper row `hyperIndex`, field 0.
 */
export const PIECE_STRIDE = 9;

/**
 * One row of per-step scalars (already f32 values): beta1, 1 - beta1, beta2, 1 - beta2,
 * 1 - lr * wd, lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t), eps, gradient scale.
 */
export const HYPER_STRIDE = 9;
/** Field of a scalar row holding the gradient scale (rewritten after the norm is known, for clipping). */
export const HYPER_GRAD_SCALE = 8;

/** One number per piece: the reduction's value, or 0 for kernels that return nothing. */
export type KernelResult = Float64Array;

// ---- the shared-memory protocol between KernelPool and its workers ----
// Posting a task as a message costs tens of microseconds per worker on each side; a step with 16
// workers paid that 16 times on the main thread before any worker ran. Instead each worker owns a
// mailbox (a shared Float64Array) and a few control words; the main thread writes the task into the
// mailbox and rings the worker's bell (Atomics.notify); the worker writes its results back and bumps
// its done counter, which the main thread awaits with Atomics.waitAsync. Messages (postMessage) carry
// only what cannot live in shared memory, once: the memories, a grown mailbox, the group buffers.

/** Int32 control words per worker (a cache line each, so workers do not share lines). */
export const CTRL_STRIDE = 16;
/** Control word: bumped by the main thread when a task (or a message needing attention) is posted. */
export const CTRL_BELL = 0;
/** Control word: bumped by the worker when a task is done (results written). */
export const CTRL_DONE = 1;
/** Control word: the last task's outcome, see TASK_*. */
export const CTRL_STATUS = 2;
export const TASK_OK = 0;
/** The task threw; the error's message follows on the worker's port. */
export const TASK_FAILED = 1;
/** The worker died (set by the main thread). */
export const TASK_CRASHED = 2;

/**
 * Mailbox layout (float64): a header, then the check pieces (phase 1 of a group task), the pieces, the
 * hyper values, then the results: [outcome, one number per piece]. Outcome GROUP_SKIPPED means the
 * group found non-finite gradients and did not update.
 */
export const BOX_PIECES = 0;
export const BOX_HYPERS = 1;
export const BOX_CHECK_PIECES = 2;
/** Group tasks: where this task's block sums go in the group's shared sums array. */
export const BOX_SUMS_OFFSET = 3;
/** Group tasks: how many tasks meet at the barrier (0: not a group task). */
export const BOX_PARTIES = 4;
/** Group tasks: all blocks of the group (every worker adds them all, in order). */
export const BOX_SUMS_TOTAL = 5;
export const BOX_FLAGS = 6;
/** Group tasks: maxGradNorm (with FLAG_CLIP), then the gradient scale the clip multiplies. */
export const BOX_MAX_GRAD_NORM = 7;
export const BOX_GRAD_SCALE = 8;
export const BOX_HEADER = 9;
/** Skip the update when the sum of squares is not finite. */
export const FLAG_SKIP_NONFINITE = 1;
/** Clip: every row's gradient scale becomes fround(gradScale * min(1, maxGradNorm / (norm + 1e-6))). */
export const FLAG_CLIP = 2;
export const GROUP_APPLIED = 0;
export const GROUP_SKIPPED = 1;
/**
 * Float64 words per worker in the shared times array (a cache line each): the start and end of its last
 * task, epoch ms on the worker (timing.ts), written before it bumps its done counter.
 */
export const TIMES_STRIDE = 8;
export const TIME_START = 0;
export const TIME_END = 1;
/** Int32 words of the group barrier: [arrived, abort (a worker failed in phase 1)]. */
export const BARRIER_WORDS = 16;
export const BARRIER_ARRIVED = 0;
export const BARRIER_ABORT = 1;

/** What a worker is started with (workerData). */
export interface WorkerInit {
  module: WebAssembly.Module;
  heapBase: number;
  /** This worker's stack slot in every memory (its index in the pool). */
  slot: number;
  ctrl: Int32Array;
  /** Per worker (TIMES_STRIDE words): when its last task started and ended. */
  times: Float64Array;
  /** The port the worker reads messages from (receiveMessageOnPort) and reports errors on. */
  port: import('node:worker_threads').MessagePort;
}

/** Messages to a worker (each followed by a bell before the worker acts on a task). */
export type WorkerMessage =
  | { kind: 'memory'; id: number; memory: WebAssembly.Memory }
  | { kind: 'box'; box: Float64Array }
  | { kind: 'group'; sums: Float64Array; barrier: Int32Array }
  | { kind: 'exit' };

/** The clipping factor a group applies: the same f64 operations on every thread and in the caller. */
export function clipCoefficient(sumOfSquares: number, gradScale: number, maxGradNorm: number): number {
  return Math.min(1, maxGradNorm / (Math.sqrt(sumOfSquares) * Math.abs(gradScale) + 1e-6));
}

/** Builds a task's pieces without knowing their count in advance. */
export class PieceWriter {
  private buf = new Float64Array(PIECE_STRIDE * 16);
  private n = 0;

  push(op: Op, memoryId: number, length: number, a: number, b = 0, c = 0, d = 0, hyper = 0, e = 0): void {
    if ((this.n + 1) * PIECE_STRIDE > this.buf.length) {
      const grown = new Float64Array(this.buf.length * 2);
      grown.set(this.buf);
      this.buf = grown;
    }
    this.buf.set([op, memoryId, length, a, b, c, d, hyper, e], this.n * PIECE_STRIDE);
    this.n++;
  }

  get count(): number {
    return this.n;
  }

  finish(): Float64Array {
    return this.buf.slice(0, this.n * PIECE_STRIDE);
  }
}
