// Worker-side timing of tasks, to tell slow workers from a main thread that notices their completion
// late (it learns of it through Atomics.waitAsync, i.e. only when its event loop gets to it). Times are
// epoch milliseconds, performance.timeOrigin + performance.now(): every worker has its own timeOrigin,
// so performance.now() alone would not compare across threads.

/** Now, in epoch ms (f64, sub-millisecond), comparable across the main thread and the workers. */
export function epochNowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** When one task ran on its worker (epoch ms, read on the worker). */
export interface TaskTiming {
  startMs: number;
  endMs: number;
}

/** Several tasks' worker-side times. */
export interface WorkerTiming {
  /** Tasks timed (0: none ran; then the times are NaN and busyMs is 0). */
  tasks: number;
  /** Earliest task start, epoch ms. */
  firstStartMs: number;
  /** Latest task end, epoch ms. */
  lastEndMs: number;
  /** Sum over the tasks of end - start (busy time added up over threads; can exceed the span). */
  busyMs: number;
}

export const NO_WORKER_TIMING: WorkerTiming = { tasks: 0, firstStartMs: NaN, lastEndMs: NaN, busyMs: 0 };

/** The summary of the tasks' times. */
export function workerTiming(tasks: readonly TaskTiming[]): WorkerTiming {
  return tasks.reduce(
    (acc, t) =>
      mergeWorkerTiming(acc, {
        tasks: 1,
        firstStartMs: t.startMs,
        lastEndMs: t.endMs,
        busyMs: t.endMs - t.startMs,
      }),
    NO_WORKER_TIMING,
  );
}

/** Two summaries as one (e.g. a step's group and the count pass after it). */
export function mergeWorkerTiming(a: WorkerTiming, b: WorkerTiming): WorkerTiming {
  if (a.tasks === 0) return b;
  if (b.tasks === 0) return a;
  return {
    tasks: a.tasks + b.tasks,
    firstStartMs: Math.min(a.firstStartMs, b.firstStartMs),
    lastEndMs: Math.max(a.lastEndMs, b.lastEndMs),
    busyMs: a.busyMs + b.busyMs,
  };
}

/**
 * One AdamW.step() seen from both sides (all ms). wallMs = startLatencyMs + workerSpanMs +
 * noticeLatencyMs: a step whose wall time is far above its span lost it on the main thread (dispatch or
 * noticing), not on the workers. With no task run (nothing to step) all but wallMs are 0.
 */
export interface StepTiming {
  /** step() call to its resolution, on the main thread. */
  wallMs: number;
  /** First worker task start to last worker task end: how long the workers took. */
  workerSpanMs: number;
  /** step() call to the first worker task start: planning, dispatch and waking a worker. */
  startLatencyMs: number;
  /** Last worker task end to the step's resolution: how long the main thread took to notice. */
  noticeLatencyMs: number;
  /**
   * Task run time summed over threads (a group task's includes its wait at the barrier): at most
   * threads x workerSpanMs; well below it means threads idled inside the span.
   */
  threadBusyMs: number;
  /** Worker tasks the step ran. */
  tasks: number;
}

/** The step's timing from its call and resolution times (main thread) and its tasks' (workers). */
export function stepTiming(calledAtMs: number, resolvedAtMs: number, w: WorkerTiming): StepTiming {
  const wallMs = resolvedAtMs - calledAtMs;
  if (w.tasks === 0)
    return { wallMs, workerSpanMs: 0, startLatencyMs: 0, noticeLatencyMs: 0, threadBusyMs: 0, tasks: 0 };
  return {
    wallMs,
    workerSpanMs: w.lastEndMs - w.firstStartMs,
    startLatencyMs: w.firstStartMs - calledAtMs,
    noticeLatencyMs: resolvedAtMs - w.lastEndMs,
    threadBusyMs: w.busyMs,
    tasks: w.tasks,
  };
}
