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

export interface KernelTask {
  /** The memories the pieces touch, by id (a shared WebAssembly.Memory posts without copying). */
  memories: Array<[number, WebAssembly.Memory]>;
  pieces: Float64Array;
  hypers: Float64Array;
}

/** One number per piece: the reduction's value, or 0 for kernels that return nothing. */
export type KernelResult = Float64Array;

export interface WorkerInit {
  module: WebAssembly.Module;
  heapBase: number;
  maxSlots: number;
  /** Shared counter handing each worker a distinct stack slot (the same slot in every memory). */
  slotCounter: Int32Array;
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
