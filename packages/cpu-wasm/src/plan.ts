// Turns "step these tensors" into one task per worker: the update pass, the sum-of-squares pass that
// checks finiteness (and gives the clipping norm) before anything is written, and the counting pass
// that names the offending tensors.
import { partition, splitBlocks, type Piece } from './partition.js';
import type { GroupTask } from './pool.js';
import { OP, PieceWriter, type Op } from './protocol.js';
import { DTYPE_BYTES, type Segment, type TensorRecord } from './tensors.js';

/** Elements per range boundary: 64 bytes of fp16, 128 of fp32, so every range starts on a cache line. */
export const GRANULE = 32;
/**
 * Elements per sum-of-squares block. Blocks are fixed from each segment's start and their sums are
 * added in one fixed order, so the norm (and a clipped step) does not depend on the thread count.
 */
export const CHECK_BLOCK = 16384;
/** Default: below this many elements per worker, spreading costs more in messages than it saves. */
export const MIN_ELEMENTS_PER_WORKER = 32768;

/** How a pass is spread: at most `threads` workers, each with at least `minElements` (but >= 1 worker). */
export interface Spread {
  threads: number;
  minElements: number;
}

interface SegmentRef {
  record: TensorRecord;
  /** Index of the record in the step's list = its row of per-step scalars. */
  row: number;
  segment: Segment;
}

function segmentRefs(records: readonly TensorRecord[]): SegmentRef[] {
  const refs: SegmentRef[] = [];
  records.forEach((record, row) => {
    for (const segment of record.segments) refs.push({ record, row, segment });
  });
  return refs;
}

function shares(refs: readonly SegmentRef[], spread: Spread, granule: number): Piece[][] {
  const lengths = refs.map((r) => r.segment.length);
  const total = lengths.reduce((a, b) => a + b, 0);
  const workers = Math.max(1, Math.min(spread.threads, Math.ceil(total / spread.minElements)));
  return partition(lengths, workers, granule).filter((s) => s.length > 0);
}

function updateOp(r: TensorRecord): Op {
  const g16 = r.gradDtype === 'f16';
  if (r.kind === 'param') {
    if (r.paramF16) return g16 ? OP.ADAMW_F16G_F16P : OP.ADAMW_F32G_F16P;
    return g16 ? OP.ADAMW_F16G : OP.ADAMW_F32G;
  }
  const o16 = r.outDtype === 'f16';
  if (g16) return o16 ? OP.STEP_F16G_F16O : OP.STEP_F16G_F32O;
  return o16 ? OP.STEP_F32G_F16O : OP.STEP_F32G_F32O;
}

/** The update of `pieces` (ranges of `refs`) as one piece list. */
function updatePieces(refs: readonly SegmentRef[], pieces: readonly Piece[]): Float64Array {
  const w = new PieceWriter();
  for (const p of pieces) {
    const { record: r, segment: s, row } = refs[p.item]!;
    const gb = DTYPE_BYTES[r.gradDtype];
    const g = s.grad + p.start * gb;
    const m = s.expAvg + p.start * 4;
    const v = s.expAvgSq + p.start * 4;
    if (r.kind === 'param') {
      // the fp16 copy (when there is one) is cut at the same elements: ranges start on 32 elements
      const p16 = r.paramF16 ? s.paramF16 + p.start * 2 : 0;
      w.push(updateOp(r), s.arena.id, p.length, s.param + p.start * 4, g, m, v, row, p16);
    } else w.push(updateOp(r), s.arena.id, p.length, g, m, v, s.out + p.start * DTYPE_BYTES[r.outDtype], row);
  }
  return w.finish();
}

/** The AdamW update, one piece list per worker. */
export function updateTasks(records: readonly TensorRecord[], spread: Spread): Float64Array[] {
  const refs = segmentRefs(records);
  return shares(refs, spread, GRANULE).map((pieces) => updatePieces(refs, pieces));
}

/**
 * Elements per piece of a streamed update: small next to a worker's share of a large step (the stream
 * balances by pieces), large next to a piece's cost to claim (~1 us against ~0.3 ms of work).
 * A multiple of GRANULE, so pieces start on cache lines.
 */
export const STREAM_PIECE_ELEMENTS = 131072;

/** The AdamW update as stream pieces: each segment cut every `pieceElements` from its start. */
export function streamUpdatePieces(
  records: readonly TensorRecord[],
  pieceElements = STREAM_PIECE_ELEMENTS,
): Float64Array {
  if (pieceElements % GRANULE !== 0) throw new RangeError(`pieces must be whole granules of ${GRANULE}`);
  const refs = segmentRefs(records);
  const whole = refs.map((r, item) => ({ item, start: 0, length: r.segment.length }));
  return updatePieces(
    refs,
    splitBlocks(whole, pieceElements).filter((p) => p.length > 0),
  );
}

/** A per-element gradient pass (sum of squares or non-finite count) and, per piece, whose it is. */
export interface GradientPass {
  tasks: Float64Array[];
  /** For each task, the record row of each of its pieces. */
  rows: number[][];
}

function gradientPass(
  records: readonly TensorRecord[],
  spread: Spread,
  ops: { f32: Op; f16: Op },
): GradientPass {
  const refs = segmentRefs(records);
  const tasks: Float64Array[] = [];
  const rows: number[][] = [];
  for (const share of shares(refs, spread, CHECK_BLOCK)) {
    const w = new PieceWriter();
    const taskRows: number[] = [];
    for (const p of splitBlocks(share, CHECK_BLOCK)) {
      const { record: r, segment: s, row } = refs[p.item]!;
      const op = r.gradDtype === 'f16' ? ops.f16 : ops.f32;
      w.push(op, s.arena.id, p.length, s.grad + p.start * DTYPE_BYTES[r.gradDtype]);
      taskRows.push(row);
    }
    tasks.push(w.finish());
    rows.push(taskRows);
  }
  return { tasks, rows };
}

/** Sum of squares per fixed block; results concatenated in task order are in one fixed global order. */
export function sumSquaresPass(records: readonly TensorRecord[], spread: Spread): GradientPass {
  return gradientPass(records, spread, { f32: OP.SUM_SQUARES_F32, f16: OP.SUM_SQUARES_F16 });
}

/**
 * A checked step as one group: task i adds up share i of the gradient blocks (sumSquaresPass) and, after
 * the barrier, runs share i of the update (updateTasks); either list may be empty for some tasks.
 */
export function checkedUpdateTasks(records: readonly TensorRecord[], spread: Spread): GroupTask[] {
  const checks = sumSquaresPass(records, spread).tasks;
  const updates = updateTasks(records, spread);
  const empty = new Float64Array(0);
  return Array.from({ length: Math.max(1, checks.length, updates.length) }, (_, i) => ({
    checks: checks[i] ?? empty,
    pieces: updates[i] ?? empty,
  }));
}

export function countNonFinitePass(records: readonly TensorRecord[], spread: Spread): GradientPass {
  return gradientPass(records, spread, { f32: OP.COUNT_NONFINITE_F32, f16: OP.COUNT_NONFINITE_F16 });
}
