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
/**
 * Control word: mailbox tasks posted to this worker so far. The bell also rings for messages and for
 * stream publications, so a worker runs its mailbox task only when this count moved.
 */
export const CTRL_TASKS = 3;
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

// ---- the shared work stream ----
// Steps that need no barrier (unchecked AdamW) go through one FIFO of pieces that the workers claim
// themselves: work is balanced piece by piece instead of in static equal shares, and a piece published
// while the workers are busy runs as soon as one is free, without waiting for the main thread to notice
// the previous step's end (its event loop may be busy with GPU work for tens of ms).
// The main thread writes records into the ring, then adds to STREAM_PUBLISHED; workers take records by
// compare-exchange on STREAM_CLAIMED while it is behind. Both counters wrap at 2^32 (compared by their
// Int32 difference; the ring size is a power of two, so `index & (size - 1)` stays right across the wrap).

/** Int32 words of the stream's control array (each on its own cache line). */
export const STREAM_CTRL_WORDS = 64;
/** Pieces published so far (mod 2^32), bumped by the main thread after writing their records. */
export const STREAM_PUBLISHED = 0;
/** Pieces claimed so far (mod 2^32), compare-exchanged by the workers. */
export const STREAM_CLAIMED = 16;
/** Pieces completed so far (mod 2^32): the main thread waits on it when the ring is full. */
export const STREAM_COMPLETED = 32;
/** 1 while the main thread waits on STREAM_COMPLETED (workers notify only then). */
export const STREAM_FULL_WAITER = 48;

/**
 * One ring record (float64): the piece's 9 fields (protocol above; its hyper index is ignored), its own
 * row of scalars inline (HYPER_STRIDE values), and the job slot it belongs to. Reductions' values are
 * not returned: streamed pieces are updates (run() returns values).
 */
export const RECORD_HYPERS = PIECE_STRIDE;
export const RECORD_JOB = PIECE_STRIDE + HYPER_STRIDE;
export const RECORD_STRIDE = RECORD_JOB + 1;

/**
 * Int32 words per job slot (a cache line): the pieces left, a done counter bumped by the worker that
 * finishes the last one (the main thread awaits it), and a failure flag (the error follows on that
 * worker's port as a StreamError message).
 */
export const JOB_STRIDE = 16;
export const JOB_REMAINING = 0;
export const JOB_DONE = 1;
export const JOB_FAILED = 2;
/**
 * Float64 words per job slot and worker (a cache line; each worker writes only its own): its first piece
 * start, last piece end (epoch ms), busy time summed over its pieces, and its piece count.
 */
export const JOB_TIMES_STRIDE = 8;
export const JT_FIRST_START = 0;
export const JT_LAST_END = 1;
export const JT_BUSY = 2;
export const JT_PIECES = 3;

/** The stream's shared arrays (fixed at pool creation). */
export interface StreamBuffers {
  ctrl: Int32Array;
  /** ringRecords x RECORD_STRIDE. */
  ring: Float64Array;
  /** Per record: 1 once its piece has run (the main thread may then reuse it). */
  recordDone: Int32Array;
  /** jobSlots x JOB_STRIDE. */
  jobs: Int32Array;
  /** jobSlots x threads x JOB_TIMES_STRIDE. */
  jobTimes: Float64Array;
}

/** A streamed piece threw: posted on the worker's port (a mailbox task's failure posts a string). */
export interface StreamError {
  job: number;
  message: string;
}

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
  stream: StreamBuffers;
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
