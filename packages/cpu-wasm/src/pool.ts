// A persistent pool of worker threads that run kernels over shared memories (zero copy): each worker
// instantiates the module once per memory it is sent, with its own stack slot in that memory. Tasks go
// through shared mailboxes and Atomics instead of messages (protocol.ts says why); a group runs tasks
// on distinct workers at once, meeting at a barrier between a gradient check and the update, so a
// checked step costs one dispatch instead of two. Steps without a barrier can instead go through the
// shared work stream (runStream): a FIFO of small pieces the workers claim themselves, so the work is
// balanced dynamically and a step published while the workers are busy starts without the main thread.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { reservedBytes } from './layout.js';
import {
  BARRIER_ABORT,
  BARRIER_ARRIVED,
  BARRIER_WORDS,
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
  HYPER_STRIDE,
  JOB_DONE,
  JOB_FAILED,
  JOB_REMAINING,
  JOB_STRIDE,
  JOB_TIMES_STRIDE,
  JT_BUSY,
  JT_FIRST_START,
  JT_LAST_END,
  JT_PIECES,
  PIECE_STRIDE,
  RECORD_HYPERS,
  RECORD_JOB,
  RECORD_STRIDE,
  STREAM_COMPLETED,
  STREAM_CTRL_WORDS,
  STREAM_FULL_WAITER,
  STREAM_PUBLISHED,
  TASK_CRASHED,
  TASK_FAILED,
  TIME_END,
  TIME_START,
  TIMES_STRIDE,
  type KernelResult,
  type StreamBuffers,
  type StreamError,
  type WorkerInit,
  type WorkerMessage,
} from './protocol.js';
import {
  NO_WORKER_TIMING,
  mergeWorkerTiming,
  workerTiming,
  type TaskTiming,
  type WorkerTiming,
} from './timing.js';
import { compileModule, heapBase } from './wasm.js';

/** The compiled worker (tests run the TS sources; workers always run the built JS). */
function workerFile(): string {
  const built = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (existsSync(built)) return built;
  const fromSrc = fileURLToPath(new URL('../dist/worker.js', import.meta.url));
  if (existsSync(fromSrc)) return fromSrc;
  throw new Error(
    `cpu-wasm worker script not found at ${built}: build the package first (npx nx run @lsp-offload/cpu-wasm:build)`,
  );
}

export interface KernelPoolOptions {
  threads: number;
  /** A memory to attach right away as id 0 (convenience for single-memory use). */
  memory?: WebAssembly.Memory;
  /**
   * Records in the stream's ring (a power of two, default 16384): pieces published and not yet run.
   * A job with more pieces than fit waits in the pool and is published as records free up.
   */
  streamRecords?: number;
  /** Stream jobs in flight at once (default 256); later ones wait in the pool. */
  streamJobs?: number;
}

const DEFAULT_STREAM_RECORDS = 16384;
const DEFAULT_STREAM_JOBS = 256;

/** What a caller hands the pool: pieces (see protocol.ts) and the scalar rows they index. */
export interface PoolTask {
  pieces: Float64Array;
  hypers?: Float64Array;
}

/** One task of a group: sum-of-squares pieces (phase 1), then the pieces to run after the barrier. */
export interface GroupTask {
  checks: Float64Array;
  pieces: Float64Array;
}

export interface GroupOptions {
  /** Scalar rows of the pieces (every task gets all of them). */
  hypers: Float64Array;
  /** Run no phase-2 piece when the total sum of squares is not finite. */
  skipNonFinite: boolean;
  /** Scale every row's gradient scale by the clipping factor of the total norm (clipCoefficient). */
  clip?: { maxGradNorm: number; gradScale: number };
}

export interface GroupResult {
  /** False when phase 2 was skipped (non-finite gradients under skipNonFinite). */
  applied: boolean;
  /** Sum of the check pieces' values, added in task order, block order (the same on every thread). */
  sumOfSquares: number;
  /** When the group's tasks ran on the workers (each task's time includes its wait at the barrier). */
  timing: WorkerTiming;
}

/** run()'s results with the time the task ran on its worker. */
export interface TimedResult {
  values: KernelResult;
  timing: TaskTiming;
}

interface Job {
  checks: Float64Array;
  pieces: Float64Array;
  hypers: Float64Array;
  group?: { parties: number; sumsOffset: number; sumsTotal: number; flags: number; clip: [number, number] };
}

interface Slot {
  index: number;
  worker: Worker;
  port: MessagePort;
  box: Float64Array;
  busy: boolean;
  /** Mailbox task failures read off the port while looking for a stream error. */
  taskErrors: string[];
}

/** A runStream() call: its pieces are published in order, as many as the ring has room for. */
interface StreamJob {
  pieces: Float64Array;
  hypers: Float64Array;
  count: number;
  /** Pieces published so far. */
  next: number;
  /** Submission order (groups hold back the jobs submitted after them). */
  seq: number;
  /** Its job slot once it has one (-1 before). */
  slot: number;
  /** The slot's done counter before the job (it changes when the last piece is done). */
  doneBefore: number;
  resolve: (t: WorkerTiming) => void;
  reject: (e: unknown) => void;
  settled: Promise<unknown>;
}

const NO_PIECES = new Float64Array(0);

/** Atomics.waitAsync (Node >= 16; ES2024 in TypeScript's lib, newer than this project's target). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;
const MIN_BOX_VALUES = 8192;

function sharedF64(values: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(values * 8));
}

export class KernelPool {
  readonly threads: number;
  /** First byte of every attached memory that callers may use (below: module data and worker stacks). */
  readonly firstFreeByte: number;
  private readonly slots: Slot[] = [];
  private readonly ctrl: Int32Array;
  /** Each worker's last task start and end (epoch ms), see protocol.ts. */
  private readonly times: Float64Array;
  private readonly memories = new Map<number, WebAssembly.Memory>();
  private readonly queue: { job: Job; resolve: (r: TimedResult) => void; reject: (e: unknown) => void }[] =
    [];
  private idleWaiters: (() => void)[] = [];
  private grouping = false;
  /** Groups run one after another. */
  private groupChain: Promise<unknown> = Promise.resolve();
  private sums = sharedF64(1024);
  private readonly barrier = new Int32Array(new SharedArrayBuffer(BARRIER_WORDS * 4));
  private destroyed = false;
  /** A worker died: reported by every later call instead of hanging. */
  private failure: Error | null = null;
  private readonly stream: StreamBuffers;
  /** Jobs with pieces still to publish, in submission order. */
  private readonly streamQueue: StreamJob[] = [];
  /** Jobs holding a slot (published at least in part), not yet finished. */
  private readonly streamActive = new Set<StreamJob>();
  private readonly freeJobSlots: number[] = [];
  /** Stream errors read off the ports, by job slot. */
  private readonly streamErrors = new Map<number, string>();
  /** Pieces published (mirror of STREAM_PUBLISHED) and the oldest record not yet reusable (mod 2^32). */
  private published = 0;
  private tail = 0;
  private nextSeq = 0;
  /** Per group waiting or running, in order: the first streamed job that must wait for it. */
  private readonly groupHolds: number[] = [];
  private waitingForRoom = false;

  constructor(options: KernelPoolOptions) {
    const { threads } = options;
    if (!Number.isInteger(threads) || threads < 1)
      throw new RangeError(`threads must be a positive integer, got ${threads}`);
    const module = compileModule();
    const base = heapBase(module);
    this.threads = threads;
    this.firstFreeByte = reservedBytes(base, threads);
    this.ctrl = new Int32Array(new SharedArrayBuffer(threads * CTRL_STRIDE * 4));
    this.times = sharedF64(threads * TIMES_STRIDE);
    const records = options.streamRecords ?? DEFAULT_STREAM_RECORDS;
    if (!Number.isInteger(records) || records < 1 || (records & (records - 1)) !== 0 || records > 1 << 24)
      throw new RangeError(`streamRecords must be a power of two in [1, 2^24], got ${records}`);
    const jobSlots = options.streamJobs ?? DEFAULT_STREAM_JOBS;
    if (!Number.isInteger(jobSlots) || jobSlots < 1)
      throw new RangeError(`streamJobs must be a positive integer, got ${jobSlots}`);
    this.stream = {
      ctrl: new Int32Array(new SharedArrayBuffer(STREAM_CTRL_WORDS * 4)),
      ring: sharedF64(records * RECORD_STRIDE),
      recordDone: new Int32Array(new SharedArrayBuffer(records * 4)),
      jobs: new Int32Array(new SharedArrayBuffer(jobSlots * JOB_STRIDE * 4)),
      jobTimes: sharedF64(jobSlots * threads * JOB_TIMES_STRIDE),
    };
    for (let j = jobSlots - 1; j >= 0; j--) this.freeJobSlots.push(j);
    const file = workerFile();
    for (let index = 0; index < threads; index++) {
      const { port1, port2 } = new MessageChannel();
      const init: WorkerInit = {
        module,
        heapBase: base,
        slot: index,
        ctrl: this.ctrl,
        times: this.times,
        port: port2,
        stream: this.stream,
      };
      const worker = new Worker(file, { workerData: init, transferList: [port2] });
      const slot: Slot = {
        index,
        worker,
        port: port1,
        box: sharedF64(MIN_BOX_VALUES),
        busy: false,
        taskErrors: [],
      };
      port1.unref();
      worker.unref(); // idle workers do not keep the process alive; busy ones are ref'd
      worker.on('error', (e: unknown) => this.crash(slot, e instanceof Error ? e : new Error(String(e))));
      worker.on('exit', (code) => {
        if (!this.destroyed) this.crash(slot, new Error(`cpu-wasm worker ${index} exited (code ${code})`));
      });
      this.post(slot, { kind: 'box', box: slot.box });
      this.post(slot, { kind: 'group', sums: this.sums, barrier: this.barrier });
      this.slots.push(slot);
    }
    if (options.memory) this.attach(options.memory);
  }

  /** Make a shared memory usable by tasks; returns its id. Its first `firstFreeByte` bytes are reserved. */
  attach(memory: WebAssembly.Memory): number {
    this.assertUsable();
    if (!(memory.buffer instanceof SharedArrayBuffer))
      throw new TypeError('KernelPool needs a shared WebAssembly.Memory (shared: true)');
    if (memory.buffer.byteLength < this.firstFreeByte)
      throw new RangeError(
        `shared memory of ${memory.buffer.byteLength} bytes cannot hold ${this.threads} worker stacks ` +
          `(needs at least ${this.firstFreeByte})`,
      );
    const id = this.memories.size;
    this.memories.set(id, memory);
    for (const slot of this.slots) this.post(slot, { kind: 'memory', id, memory });
    return id;
  }

  /** Run one task on one worker; resolves with one number per piece. */
  run(task: PoolTask): Promise<KernelResult> {
    // (not async: a bad task throws at the call, as it always has)
    return this.runTimed(task).then((r) => r.values);
  }

  /**
   * run(), also resolving to when the task started and ended on its worker (epoch ms, see timing.ts):
   * compared with the caller's own clock, it tells worker time from the time the caller took to notice.
   */
  runTimed(task: PoolTask): Promise<TimedResult> {
    this.assertUsable();
    this.checkMemories(task.pieces);
    return new Promise((resolve, reject) => {
      this.queue.push({
        job: { checks: NO_PIECES, pieces: task.pieces, hypers: task.hypers ?? NO_PIECES },
        resolve,
        reject,
      });
      this.dispatch();
    });
  }

  /**
   * Run `tasks` at once, one per worker (at most `threads`, nothing else running): each adds up its
   * check pieces into the group's sums, all meet at a barrier, each computes the same total, then runs
   * its pieces unless `skipNonFinite` and the total is not finite (clipped by `clip` when given).
   */
  runGroup(tasks: readonly GroupTask[], options: GroupOptions): Promise<GroupResult> {
    // streamed jobs submitted before this call run before the group, later ones after it
    const streamBefore = this.nextSeq;
    this.groupHolds.push(streamBefore);
    const run = this.groupChain
      .then(() => this.runGroupNow(tasks, options, streamBefore))
      .finally(() => {
        this.groupHolds.shift();
        this.pump();
      });
    this.groupChain = run.catch(() => undefined);
    return run;
  }

  /** Jobs submitted from this seq on wait (a group is waiting for or using the workers). */
  private get holdStreamFrom(): number {
    return this.groupHolds[0] ?? Infinity;
  }

  private async runGroupNow(
    tasks: readonly GroupTask[],
    options: GroupOptions,
    streamBefore: number,
  ): Promise<GroupResult> {
    this.assertUsable();
    if (tasks.length < 1 || tasks.length > this.threads)
      throw new RangeError(`a group needs 1 to ${this.threads} tasks, got ${tasks.length}`);
    for (const t of tasks) {
      this.checkMemories(t.checks);
      this.checkMemories(t.pieces);
    }
    this.grouping = true;
    try {
      // the stream must be drained (and stay still) while the group holds the workers
      const earlier = [...this.streamQueue, ...this.streamActive].filter((j) => j.seq < streamBefore);
      await Promise.allSettled(earlier.map((j) => j.settled));
      await this.allIdle();
      const counts = tasks.map((t) => t.checks.length / PIECE_STRIDE);
      const total = counts.reduce((a, b) => a + b, 0);
      if (total > this.sums.length) {
        this.sums = sharedF64(Math.max(total, 2 * this.sums.length));
        for (const slot of this.slots)
          this.post(slot, { kind: 'group', sums: this.sums, barrier: this.barrier });
      }
      Atomics.store(this.barrier, BARRIER_ARRIVED, 0);
      Atomics.store(this.barrier, BARRIER_ABORT, 0);
      const flags = (options.skipNonFinite ? FLAG_SKIP_NONFINITE : 0) | (options.clip ? FLAG_CLIP : 0);
      const clip: [number, number] = options.clip
        ? [options.clip.maxGradNorm, options.clip.gradScale]
        : [0, 1];
      let offset = 0;
      const runs = tasks.map((t, i) => {
        const group = { parties: tasks.length, sumsOffset: offset, sumsTotal: total, flags, clip };
        offset += counts[i]!;
        return this.execute(this.slots[i]!, {
          checks: t.checks,
          pieces: t.pieces,
          hypers: options.hypers,
          group,
        });
      });
      // every worker must be out of the group (a failed one makes the others skip) before it ends
      const settled = await Promise.allSettled(runs);
      const failed = settled.find((s) => s.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      let sumOfSquares = 0;
      for (let i = 0; i < total; i++) sumOfSquares += this.sums[i]!;
      const done = settled.map((s) => (s as PromiseFulfilledResult<TimedResult>).value);
      const applied = done.every((r) => r.values[0] === GROUP_APPLIED);
      return { applied, sumOfSquares, timing: workerTiming(done.map((r) => r.timing)) };
    } finally {
      this.grouping = false;
      this.dispatch();
    }
  }

  /**
   * Put a task's pieces on the shared stream: any worker takes them, one at a time, in submission order
   * (after the pieces of earlier calls), with no barrier. Resolves to when they ran, once all are done
   * (their values, if any, are not returned: use run() for reductions). Several calls may be in flight;
   * pieces of different calls may run at once, so they must not write what another reads or writes.
   */
  runStream(task: PoolTask): Promise<WorkerTiming> {
    this.assertUsable();
    this.checkMemories(task.pieces);
    const count = task.pieces.length / PIECE_STRIDE;
    const hypers = task.hypers ?? NO_PIECES;
    for (let i = 0; i < count; i++) {
      const h = task.pieces[i * PIECE_STRIDE + 7]!;
      if (hypers.length && (h + 1) * HYPER_STRIDE > hypers.length)
        throw new RangeError(`KernelPool.runStream: piece ${i} names scalar row ${h}, beyond the hypers`);
    }
    if (count === 0) return Promise.resolve(NO_WORKER_TIMING);
    let resolve!: (t: WorkerTiming) => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<WorkerTiming>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const job: StreamJob = {
      pieces: task.pieces,
      hypers,
      count,
      next: 0,
      seq: this.nextSeq++,
      slot: -1,
      doneBefore: 0,
      resolve,
      reject,
      settled: done.catch(() => undefined),
    };
    this.streamQueue.push(job);
    this.pump();
    return done;
  }

  /**
   * Publish what the ring, the job slots and a waiting group allow: records are written, then
   * STREAM_PUBLISHED moves (that store releases them to the workers), then every worker is rung.
   */
  private pump(): void {
    if (this.destroyed || this.failure) return;
    this.reclaim();
    const size = this.stream.recordDone.length;
    const mask = size - 1;
    const { ring, recordDone, jobs, jobTimes } = this.stream;
    let publishedAny = false;
    while (this.streamQueue.length) {
      const job = this.streamQueue[0]!;
      if (job.seq >= this.holdStreamFrom) break;
      if (job.slot < 0) {
        const slot = this.freeJobSlots.pop();
        if (slot === undefined) break; // a finishing job frees one and pumps again
        job.slot = slot;
        const times = slot * this.threads * JOB_TIMES_STRIDE;
        jobTimes.fill(0, times, times + this.threads * JOB_TIMES_STRIDE);
        Atomics.store(jobs, slot * JOB_STRIDE + JOB_REMAINING, job.count);
        Atomics.store(jobs, slot * JOB_STRIDE + JOB_FAILED, 0);
        job.doneBefore = Atomics.load(jobs, slot * JOB_STRIDE + JOB_DONE);
        this.streamActive.add(job);
        this.awaitJob(job);
      }
      const room = size - ((this.published - this.tail) | 0);
      const n = Math.min(room, job.count - job.next);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) {
        const index = (this.published + i) & mask;
        const at = index * RECORD_STRIDE;
        const p = (job.next + i) * PIECE_STRIDE;
        ring.set(job.pieces.subarray(p, p + PIECE_STRIDE), at);
        const h = job.pieces[p + 7]! * HYPER_STRIDE;
        if (job.hypers.length) ring.set(job.hypers.subarray(h, h + HYPER_STRIDE), at + RECORD_HYPERS);
        else ring.fill(0, at + RECORD_HYPERS, at + RECORD_HYPERS + HYPER_STRIDE);
        ring[at + RECORD_JOB] = job.slot;
        recordDone[index] = 0;
      }
      this.published = (this.published + n) | 0;
      Atomics.add(this.stream.ctrl, STREAM_PUBLISHED, n);
      job.next += n;
      publishedAny = true;
      if (job.next < job.count) break; // the ring is full
      this.streamQueue.shift();
    }
    if (publishedAny) for (const slot of this.slots) this.ring(slot);
    this.refreshRefs();
    const head = this.streamQueue[0];
    if (head && head.slot >= 0 && head.seq < this.holdStreamFrom) this.waitForRoom();
  }

  /** Move the tail over records whose pieces have run (in order: the ring is reused in order). */
  private reclaim(): void {
    const { recordDone } = this.stream;
    const mask = recordDone.length - 1;
    while (this.tail !== this.published && Atomics.load(recordDone, this.tail & mask) === 1)
      this.tail = (this.tail + 1) | 0;
  }

  /** The ring is full: pump again once a worker completes a piece. */
  private waitForRoom(): void {
    if (this.waitingForRoom) return;
    this.waitingForRoom = true;
    const ctrl = this.stream.ctrl;
    Atomics.store(ctrl, STREAM_FULL_WAITER, 1);
    // (read after raising the flag: a piece completed after this read notifies, or changes the word)
    const seen = Atomics.load(ctrl, STREAM_COMPLETED);
    const resume = (): void => {
      this.waitingForRoom = false;
      Atomics.store(ctrl, STREAM_FULL_WAITER, 0);
      this.pump();
    };
    this.reclaim();
    const size = this.stream.recordDone.length;
    if (((this.published - this.tail) | 0) < size) {
      queueMicrotask(resume); // pieces completed before the flag was up: room already
      return;
    }
    const wait = waitAsync(ctrl, STREAM_COMPLETED, seen);
    if (wait.async) void (wait.value as Promise<string>).then(resume);
    else queueMicrotask(resume);
  }

  /** Resolve (or reject) a job once the worker that runs its last piece bumps the slot's done counter. */
  private awaitJob(job: StreamJob): void {
    const { jobs } = this.stream;
    const doneAt = job.slot * JOB_STRIDE + JOB_DONE;
    const wait = waitAsync(jobs, doneAt, job.doneBefore);
    const finished = wait.async ? (wait.value as Promise<string>) : Promise.resolve('not-equal');
    void finished.then(() => this.finishJob(job));
  }

  private finishJob(job: StreamJob): void {
    const { jobs, jobTimes } = this.stream;
    const j = job.slot * JOB_STRIDE;
    this.streamActive.delete(job);
    const complete = Atomics.load(jobs, j + JOB_REMAINING) === 0;
    if (!complete) {
      // woken by crash() or destroy(): the slot may still be written by a worker; never reuse it
      job.reject(this.failure ?? new Error('KernelPool destroyed before the streamed task ran'));
      this.refreshRefs();
      return;
    }
    this.freeJobSlots.push(job.slot);
    if (Atomics.load(jobs, j + JOB_FAILED)) {
      job.reject(new Error(`cpu-wasm worker (stream): ${this.streamError(job.slot)}`));
    } else {
      let timing = NO_WORKER_TIMING;
      for (let w = 0; w < this.threads; w++) {
        const t = (job.slot * this.threads + w) * JOB_TIMES_STRIDE;
        const pieces = jobTimes[t + JT_PIECES]!;
        if (pieces === 0) continue;
        timing = mergeWorkerTiming(timing, {
          tasks: pieces,
          firstStartMs: jobTimes[t + JT_FIRST_START]!,
          lastEndMs: jobTimes[t + JT_LAST_END]!,
          busyMs: jobTimes[t + JT_BUSY]!,
        });
      }
      job.resolve(timing);
    }
    this.pump();
  }

  /** The message a worker posted for a failed stream job (mailbox failures found on the way are kept). */
  private streamError(jobSlot: number): string {
    for (const slot of this.slots)
      for (let m = receiveMessageOnPort(slot.port); m; m = receiveMessageOnPort(slot.port)) {
        const message = m.message as string | StreamError;
        if (typeof message === 'string') slot.taskErrors.push(message);
        else this.streamErrors.set(message.job, message.message);
      }
    const message = this.streamErrors.get(jobSlot) ?? 'unknown error';
    this.streamErrors.delete(jobSlot);
    return message;
  }

  /** A worker keeps the process alive while it has a mailbox task or the stream has work. */
  private refreshRefs(): void {
    if (this.destroyed) return;
    const streaming = this.streamActive.size > 0 || this.streamQueue.length > 0;
    for (const slot of this.slots) {
      if (slot.busy || streaming) slot.worker.ref();
      else slot.worker.unref();
    }
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Stop the workers (each finishes its current task first); queued tasks are rejected. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const q of this.queue.splice(0)) q.reject(new Error('KernelPool destroyed before the task ran'));
    for (const job of this.streamQueue.splice(0))
      if (job.slot < 0) job.reject(new Error('KernelPool destroyed before the streamed task ran'));
    await Promise.all(
      this.slots.map((slot) => {
        const exited = new Promise<void>((resolve) => slot.worker.once('exit', () => resolve()));
        slot.worker.ref(); // an awaited destroy must not let the process end before the workers do
        this.post(slot, { kind: 'exit' });
        this.ring(slot);
        return exited;
      }),
    );
    this.wakeStreamWaiters();
  }

  /** Wake the waiters of unfinished stream jobs (the workers are gone): finishJob rejects them. */
  private wakeStreamWaiters(): void {
    const { jobs } = this.stream;
    for (const job of this.streamActive) {
      Atomics.add(jobs, job.slot * JOB_STRIDE + JOB_DONE, 1);
      Atomics.notify(jobs, job.slot * JOB_STRIDE + JOB_DONE);
    }
  }

  private checkMemories(pieces: Float64Array): void {
    for (let at = 1; at < pieces.length; at += PIECE_STRIDE)
      if (!this.memories.has(pieces[at]!))
        throw new RangeError(`KernelPool: no attached memory with id ${pieces[at]}`);
  }

  /** Start queued tasks on idle workers (none while a group is waiting for or using the workers). */
  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.grouping || !this.queue.length) break;
      if (slot.busy) continue;
      const { job, resolve, reject } = this.queue.shift()!;
      this.execute(slot, job).then((r) => resolve({ ...r, values: r.values.subarray(1) }), reject);
    }
    if (this.slots.every((s) => !s.busy)) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves when no worker is busy (queued tasks wait while a group holds the workers). */
  private allIdle(): Promise<void> {
    if (this.slots.every((s) => !s.busy)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Write a job into a worker's mailbox, ring it, wait for it; resolves with [outcome, ...results]. */
  private async execute(slot: Slot, job: Job): Promise<TimedResult> {
    const count = job.pieces.length / PIECE_STRIDE;
    const resultAt = BOX_HEADER + job.checks.length + job.pieces.length + job.hypers.length;
    if (resultAt + 1 + count > slot.box.length) {
      slot.box = sharedF64(Math.max(resultAt + 1 + count, 2 * slot.box.length));
      this.post(slot, { kind: 'box', box: slot.box });
    }
    const box = slot.box;
    box[BOX_PIECES] = count;
    box[BOX_HYPERS] = job.hypers.length;
    box[BOX_CHECK_PIECES] = job.checks.length / PIECE_STRIDE;
    const g = job.group;
    box[BOX_PARTIES] = g?.parties ?? 0;
    box[BOX_SUMS_OFFSET] = g?.sumsOffset ?? 0;
    box[BOX_SUMS_TOTAL] = g?.sumsTotal ?? 0;
    box[BOX_FLAGS] = g?.flags ?? 0;
    box[BOX_MAX_GRAD_NORM] = g?.clip[0] ?? 0;
    box[BOX_GRAD_SCALE] = g?.clip[1] ?? 1;
    box.set(job.checks, BOX_HEADER);
    box.set(job.pieces, BOX_HEADER + job.checks.length);
    box.set(job.hypers, BOX_HEADER + job.checks.length + job.pieces.length);
    slot.busy = true;
    slot.worker.ref();
    const base = slot.index * CTRL_STRIDE;
    try {
      const before = Atomics.load(this.ctrl, base + CTRL_DONE);
      Atomics.add(this.ctrl, base + CTRL_TASKS, 1);
      this.ring(slot);
      const wait = waitAsync(this.ctrl, base + CTRL_DONE, before);
      if (wait.async) await wait.value;
      const status = Atomics.load(this.ctrl, base + CTRL_STATUS);
      if (status === TASK_FAILED) {
        throw new Error(`cpu-wasm worker ${slot.index}: ${this.taskError(slot) ?? 'unknown error'}`);
      }
      if (status === TASK_CRASHED) throw this.failure ?? new Error(`cpu-wasm worker ${slot.index} died`);
      const t = slot.index * TIMES_STRIDE;
      return {
        values: box.slice(resultAt, resultAt + 1 + count),
        timing: { startMs: this.times[t + TIME_START]!, endMs: this.times[t + TIME_END]! },
      };
    } finally {
      slot.busy = false;
      this.refreshRefs();
      this.dispatch();
    }
  }

  /** The message of a failed mailbox task (stream errors met on the way are kept for their jobs). */
  private taskError(slot: Slot): string | undefined {
    if (slot.taskErrors.length) return slot.taskErrors.shift();
    for (let m = receiveMessageOnPort(slot.port); m; m = receiveMessageOnPort(slot.port)) {
      const message = m.message as string | StreamError;
      if (typeof message === 'string') return message;
      this.streamErrors.set(message.job, message.message);
    }
    return undefined;
  }

  private post(slot: Slot, message: WorkerMessage): void {
    slot.port.postMessage(message);
  }

  private ring(slot: Slot): void {
    const bell = slot.index * CTRL_STRIDE + CTRL_BELL;
    Atomics.add(this.ctrl, bell, 1);
    Atomics.notify(this.ctrl, bell);
  }

  /** A worker died: fail its task (wake the waiter) and every later call. */
  private crash(slot: Slot, error: Error): void {
    this.failure ??= error;
    const base = slot.index * CTRL_STRIDE;
    if (slot.busy) {
      Atomics.store(this.ctrl, base + CTRL_STATUS, TASK_CRASHED);
      Atomics.add(this.ctrl, base + CTRL_DONE, 1);
      Atomics.notify(this.ctrl, base + CTRL_DONE);
    }
    for (const q of this.queue.splice(0)) q.reject(error);
    for (const job of this.streamQueue.splice(0)) if (job.slot < 0) job.reject(error);
    this.wakeStreamWaiters();
  }

  private assertUsable(): void {
    if (this.destroyed) throw new Error('KernelPool used after destroy()');
    if (this.failure)
      throw new Error(`KernelPool: a worker failed: ${this.failure.message}`, { cause: this.failure });
  }
}
