// KernelPool's worker: waits on its bell, reads a task from its shared mailbox, runs the kernel calls on
// raw offsets in the shared memories (one kernels instance per memory, made the first time a task names
// it, each with this worker's own stack slot), writes the results back and bumps its done counter.
// Between mailbox tasks it claims pieces from the shared stream until it is empty, then sleeps.
// Tensor data is never copied; see protocol.ts for the mailbox and stream layouts.
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { workerStackTop } from './layout.js';
import {
  BARRIER_ABORT,
  BARRIER_ARRIVED,
  BOX_CHECK_PIECES,
  BOX_FLAGS,
  BOX_GRAD_SCALE,
  BOX_HEADER,
  BOX_HYPERS,
  BOX_MAX_GRAD_NORM,
  BOX_PARTIES,
  BOX_PIECES,
  BOX_SUMS_OFFSET,
  BOX_SUMS_TOTAL,
  CTRL_BELL,
  CTRL_DONE,
  CTRL_STATUS,
  CTRL_STRIDE,
  CTRL_TASKS,
  FLAG_CLIP,
  FLAG_SKIP_NONFINITE,
  GROUP_APPLIED,
  GROUP_SKIPPED,
  HYPER_GRAD_SCALE,
  JOB_DONE,
  JOB_FAILED,
  JOB_REMAINING,
  JOB_STRIDE,
  JOB_TIMES_STRIDE,
  JT_BUSY,
  JT_FIRST_START,
  JT_LAST_END,
  JT_PIECES,
  HYPER_STRIDE,
  OP,
  PIECE_STRIDE,
  RECORD_HYPERS,
  RECORD_JOB,
  RECORD_STRIDE,
  STREAM_CLAIMED,
  STREAM_COMPLETED,
  STREAM_FULL_WAITER,
  STREAM_PUBLISHED,
  TASK_FAILED,
  TASK_OK,
  TIME_END,
  TIME_START,
  TIMES_STRIDE,
  clipCoefficient,
  type StreamError,
  type WorkerInit,
  type WorkerMessage,
} from './protocol.js';
import { epochNowMs } from './timing.js';
import { instantiateKernels, type KernelExports } from './wasm.js';

/** A group's barrier gives up after this long (a party that never came: a crashed worker). */
const BARRIER_TIMEOUT_MS = 120_000;

const init = workerData as WorkerInit;
const memories = new Map<number, WebAssembly.Memory>();
const instances = new Map<number, KernelExports>();
let box: Float64Array = new Float64Array(0);
let sums: Float64Array = new Float64Array(0);
let barrier: Int32Array = new Int32Array(0);

function kernelsFor(id: number): KernelExports {
  let k = instances.get(id);
  if (!k) {
    // a memory attached while this worker was busy: its message is already on the port
    if (!memories.has(id)) drainMessages();
    const memory = memories.get(id);
    if (!memory) throw new Error(`cpu-wasm task refers to memory ${id}, which was never attached`);
    k = instantiateKernels(memory, workerStackTop(init.heapBase, init.slot), init.module);
    instances.set(id, k);
  }
  return k;
}

/** Run `count` pieces from box[at...], scalars from box[hyperAt...]; piece i's value goes to out[i]. */
function runPieces(at: number, count: number, hyperAt: number, out: (i: number, v: number) => void): void {
  for (let i = 0; i < count; i++) {
    const p = at + i * PIECE_STRIDE;
    const v = runPiece(box, p, box, hyperAt + box[p + 7]! * HYPER_STRIDE);
    if (v !== undefined) out(i, v);
  }
}

/** The piece at src[p...] with its scalar row at hs[h...]; returns a reduction's value. */
function runPiece(src: Float64Array, p: number, hs: Float64Array, h: number): number | undefined {
  {
    const op = src[p]!;
    const k = kernelsFor(src[p + 1]!);
    const n = src[p + 2]!;
    const a = src[p + 3]!;
    const b = src[p + 4]!;
    const c = src[p + 5]!;
    const d = src[p + 6]!;
    const e = src[p + 8]!;
    const hp = (j: number): number => hs[j]!;
    switch (op) {
      case OP.ADAMW_F32G:
      case OP.ADAMW_F16G: {
        const f = op === OP.ADAMW_F32G ? k.adamw_f32g : k.adamw_f16g;
        f(
          a,
          b,
          c,
          d,
          n,
          hp(h),
          hp(h + 1),
          hp(h + 2),
          hp(h + 3),
          hp(h + 4),
          hp(h + 5),
          hp(h + 6),
          hp(h + 7),
          hp(h + 8),
        );
        break;
      }
      case OP.ADAMW_F32G_F16P:
      case OP.ADAMW_F16G_F16P: {
        const f = op === OP.ADAMW_F32G_F16P ? k.adamw_f32g_f16p : k.adamw_f16g_f16p;
        f(
          a,
          b,
          c,
          d,
          e,
          n,
          hp(h),
          hp(h + 1),
          hp(h + 2),
          hp(h + 3),
          hp(h + 4),
          hp(h + 5),
          hp(h + 6),
          hp(h + 7),
          hp(h + 8),
        );
        break;
      }
      case OP.STEP_F32G_F32O:
      case OP.STEP_F32G_F16O:
      case OP.STEP_F16G_F32O:
      case OP.STEP_F16G_F16O: {
        const f = [
          k.adamw_step_f32g_f32o,
          k.adamw_step_f32g_f16o,
          k.adamw_step_f16g_f32o,
          k.adamw_step_f16g_f16o,
        ][op - OP.STEP_F32G_F32O]!;
        // no weight decay in step-only mode: skip the decay field (h + 4)
        f(a, b, c, d, n, hp(h), hp(h + 1), hp(h + 2), hp(h + 3), hp(h + 5), hp(h + 6), hp(h + 7), hp(h + 8));
        break;
      }
      case OP.SUM_SQUARES_F32:
        return k.sum_squares_f32(a, n);
      case OP.SUM_SQUARES_F16:
        return k.sum_squares_f16(a, n);
      case OP.COUNT_NONFINITE_F32:
        return k.count_nonfinite_f32(a, n) >>> 0;
      case OP.COUNT_NONFINITE_F16:
        return k.count_nonfinite_f16(a, n) >>> 0;
      case OP.COPY_F32:
        k.copy_f32(a, b, n);
        break;
      case OP.F16_TO_F32:
        k.f16_to_f32(a, b, n);
        break;
      case OP.F32_TO_F16:
        k.f32_to_f16(a, b, n);
        break;
      case OP.AXPY_F32:
        k.axpy_f32(a, b, n, hp(h));
        break;
      default:
        throw new Error(`cpu-wasm worker: unknown opcode ${op}`);
    }
  }
  return undefined;
}

/** Wait until `parties` workers have arrived (the group's phase 1 is done everywhere). */
function meet(parties: number): void {
  if (Atomics.add(barrier, BARRIER_ARRIVED, 1) + 1 === parties) {
    Atomics.notify(barrier, BARRIER_ARRIVED);
    return;
  }
  const deadline = Date.now() + BARRIER_TIMEOUT_MS;
  for (;;) {
    const arrived = Atomics.load(barrier, BARRIER_ARRIVED);
    if (arrived >= parties) return;
    if (Date.now() > deadline)
      throw new Error(
        `cpu-wasm group barrier: ${arrived} of ${parties} workers arrived within ${BARRIER_TIMEOUT_MS} ms`,
      );
    Atomics.wait(barrier, BARRIER_ARRIVED, arrived, 1000);
  }
}

/** The task in the mailbox; results after its inputs: [outcome, one value per piece]. */
function runTask(): void {
  const count = box[BOX_PIECES]!;
  const checks = box[BOX_CHECK_PIECES]!;
  const checksAt = BOX_HEADER;
  const piecesAt = checksAt + checks * PIECE_STRIDE;
  const hyperAt = piecesAt + count * PIECE_STRIDE;
  const resultAt = hyperAt + box[BOX_HYPERS]!;
  box[resultAt] = GROUP_APPLIED;
  const parties = box[BOX_PARTIES]!;
  if (parties > 0) {
    // phase 1: this task's block sums of squares, then the barrier, then the same total on every worker
    const offset = box[BOX_SUMS_OFFSET]!;
    try {
      runPieces(checksAt, checks, hyperAt, (i, v) => (sums[offset + i] = v));
    } catch (e) {
      Atomics.store(barrier, BARRIER_ABORT, 1); // the others must not update on a partial norm
      meet(parties);
      throw e;
    }
    meet(parties);
    if (Atomics.load(barrier, BARRIER_ABORT)) {
      box[resultAt] = GROUP_SKIPPED; // another worker failed and reports it
      return;
    }
    let total = 0;
    const blocks = box[BOX_SUMS_TOTAL]!;
    for (let i = 0; i < blocks; i++) total += sums[i]!;
    const flags = box[BOX_FLAGS]!;
    if (!Number.isFinite(total) && flags & FLAG_SKIP_NONFINITE) {
      box[resultAt] = GROUP_SKIPPED;
      return;
    }
    if (flags & FLAG_CLIP) {
      const gradScale = box[BOX_GRAD_SCALE]!;
      const scale = Math.fround(gradScale * clipCoefficient(total, gradScale, box[BOX_MAX_GRAD_NORM]!));
      for (let j = hyperAt + HYPER_GRAD_SCALE; j < resultAt; j += HYPER_STRIDE) box[j] = scale;
    }
  }
  runPieces(piecesAt, count, hyperAt, (i, v) => (box[resultAt + 1 + i] = v));
}

function receive(message: WorkerMessage): boolean {
  switch (message.kind) {
    case 'memory':
      memories.set(message.id, message.memory);
      return true;
    case 'box':
      box = message.box;
      return true;
    case 'group':
      sums = message.sums;
      barrier = message.barrier;
      return true;
    case 'exit':
      return false;
  }
}

const ctrl = init.ctrl;
const base = init.slot * CTRL_STRIDE;
const timesAt = init.slot * TIMES_STRIDE;
const stream = init.stream;
const ringMask = stream.recordDone.length - 1;
/** Float64 words of one job slot's times (a row per worker). */
const jobTimesPerSlot = (stream.jobTimes.length / (stream.jobs.length / JOB_STRIDE)) | 0;
let running = true;

function drainMessages(): void {
  for (let m = receiveMessageOnPort(init.port); m; m = receiveMessageOnPort(init.port))
    running = receive(m.message as WorkerMessage) && running;
}

/** Claim and run published pieces until none is left (returns whether it ran any). */
function drainStream(): boolean {
  const sc = stream.ctrl;
  let ran = false;
  for (;;) {
    const claimed = Atomics.load(sc, STREAM_CLAIMED);
    if (((Atomics.load(sc, STREAM_PUBLISHED) - claimed) | 0) <= 0) return ran;
    if (Atomics.compareExchange(sc, STREAM_CLAIMED, claimed, (claimed + 1) | 0) !== claimed) continue;
    ran = true;
    const record = claimed & ringMask;
    const at = record * RECORD_STRIDE;
    const job = stream.ring[at + RECORD_JOB]!;
    const startMs = epochNowMs();
    try {
      runPiece(stream.ring, at, stream.ring, at + RECORD_HYPERS);
    } catch (e) {
      Atomics.store(stream.jobs, job * JOB_STRIDE + JOB_FAILED, 1);
      const error: StreamError = { job, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
      init.port.postMessage(error);
    }
    const endMs = epochNowMs();
    // this worker's own row of the job's times (plain stores: the Atomics.sub below publishes them)
    const t = job * jobTimesPerSlot + init.slot * JOB_TIMES_STRIDE;
    const jt = stream.jobTimes;
    if (jt[t + JT_PIECES] === 0) jt[t + JT_FIRST_START] = startMs;
    jt[t + JT_LAST_END] = endMs;
    jt[t + JT_BUSY] = jt[t + JT_BUSY]! + (endMs - startMs);
    jt[t + JT_PIECES] = jt[t + JT_PIECES]! + 1;
    Atomics.store(stream.recordDone, record, 1);
    const j = job * JOB_STRIDE;
    if (Atomics.sub(stream.jobs, j + JOB_REMAINING, 1) === 1) {
      Atomics.add(stream.jobs, j + JOB_DONE, 1);
      Atomics.notify(stream.jobs, j + JOB_DONE);
    }
    Atomics.add(sc, STREAM_COMPLETED, 1);
    if (Atomics.load(sc, STREAM_FULL_WAITER)) Atomics.notify(sc, STREAM_COMPLETED);
  }
}

let tasksSeen = 0;
while (running) {
  // read the bell first: whatever is posted after this read rings it again, so the wait returns
  const rung = Atomics.load(ctrl, base + CTRL_BELL);
  drainMessages();
  if (!running) break;
  if (Atomics.load(ctrl, base + CTRL_TASKS) !== tasksSeen) {
    tasksSeen = Atomics.load(ctrl, base + CTRL_TASKS);
    init.times[timesAt + TIME_START] = epochNowMs();
    try {
      runTask();
      ctrl[base + CTRL_STATUS] = TASK_OK;
    } catch (e) {
      ctrl[base + CTRL_STATUS] = TASK_FAILED;
      init.port.postMessage(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    }
    // (plain stores: the Atomics.add below publishes them with the results)
    init.times[timesAt + TIME_END] = epochNowMs();
    Atomics.add(ctrl, base + CTRL_DONE, 1);
    Atomics.notify(ctrl, base + CTRL_DONE);
    continue;
  }
  if (drainStream()) continue;
  Atomics.wait(ctrl, base + CTRL_BELL, rung);
}
init.port.close();
