// The CPU optimizer's step queue of the layer-wise schedule: steps start as soon as they are asked for
// and overlap on the workers (cpu-wasm's stream), with their timing counted once.
import type { AdamW as CpuAdamW } from '@lsp-offload/cpu-wasm';
import { NO_CPU_STEPS, type CpuStepTiming } from './mode-updates.js';
import { TRACE_THREADS, type StepTrace } from './trace.js';

/** One finished CPU step, waiting for its turn in the accounting (call order). */
interface FinishedStep {
  t0: number;
  t1: number;
  w: CpuStepReportTiming;
  tensors: number;
  trace: StepTrace | undefined;
  label: string;
  accounted: ((ownMs: number) => void) | undefined;
}

/** What step() was asked, as run() starts it (maybe after the tensors' earlier steps). */
interface StepRequest {
  names: string[];
  trace: StepTrace | undefined;
  label: string;
  gradScale: number;
  gradScales: Record<string, number>;
  producedAt: number;
  accounted: ((ownMs: number) => void) | undefined;
}

type CpuStepReportTiming = Awaited<ReturnType<CpuAdamW['step']>>['timing'];

/**
 * Starts CPU optimizer steps as they are asked for (each unit's as soon as its gradients have landed):
 * the optimizer's unchecked steps on disjoint tensors run at once through its workers' shared stream, so
 * a step no longer waits for the main thread (often busy recording GPU work) to notice the previous one's
 * end. A step naming a tensor whose previous step is still running waits for it first.
 * Timing counts overlapping steps once: busyMs and timing.wallMs are the union of the steps' in-flight
 * intervals, timing.workerSpanMs the union of their worker spans, startLatencyMs the time steps waited
 * to start while no worker ran a step, noticeLatencyMs the rest of the wall time (in flight, workers
 * idle: the main thread had not noticed yet).
 */
export class CpuStepQueue {
  busyMs = 0;
  /** Running totals of the steps as the workers saw them (is the wall time theirs or the main thread's?). */
  readonly timing: CpuStepTiming = { ...NO_CPU_STEPS };
  /** The running step of each tensor. */
  private readonly running = new Map<string, Promise<unknown>>();
  /** Steps in flight, and since when at least one was (performance.now() ms). */
  private active = 0;
  private activeSinceMs = 0;
  /** Steps are accounted in call order (the unions below need intervals in start order). */
  private called = 0;
  private accounted = 0;
  private readonly finished = new Map<number, FinishedStep | null>();
  /** Ends of the unions so far: wall, worker spans, start latencies (performance.now() ms). */
  private wallEndMs = -Infinity;
  private spanEndMs = -Infinity;
  private startEndMs = -Infinity;

  constructor(private readonly opt: CpuAdamW) {}

  /**
   * The trainer step whose gradients the starting CPU step applies (its learning rate's step): the lr
   * schedule reads it synchronously inside the optimizer's step().
   */
  stepOfGradients = 0;

  /**
   * Step `names` (unchecked: the caller has ruled out non-finite gradients from the GPU's count) with
   * the learning rate of trainer step `producedAt`, and resolve to the step's duration. `accounted`
   * gets, once every step called before it has ended, the part of its wall time no earlier step
   * overlapped (these add up to busyMs: what a serial model of the CPU stage should charge it).
   */
  step(
    names: string[],
    trace: StepTrace | undefined,
    label: string,
    gradScale: number,
    gradScales: Record<string, number>,
    producedAt: number,
    accounted?: (ownMs: number) => void,
  ): Promise<number> {
    const seq = this.called++;
    const before = names.flatMap((n) => this.running.get(n) ?? []);
    const request: StepRequest = { names, trace, label, gradScale, gradScales, producedAt, accounted };
    const go = (): Promise<number> => this.run(seq, request);
    const run = before.length ? Promise.allSettled(before).then(go) : go();
    const settled = run.catch(() => undefined);
    for (const n of names) this.running.set(n, settled);
    void settled.then(() => {
      for (const n of names) if (this.running.get(n) === settled) this.running.delete(n);
    });
    return run;
  }

  private async run(seq: number, request: StepRequest): Promise<number> {
    const { names, trace, label, gradScale, gradScales, producedAt, accounted } = request;
    const t0 = performance.now();
    if (this.active++ === 0) this.activeSinceMs = t0;
    let w: CpuStepReportTiming;
    try {
      this.stepOfGradients = producedAt;
      ({ timing: w } = await this.opt.step({ names, nonFinite: 'propagate', gradScale, gradScales }));
    } catch (e) {
      this.leave(performance.now());
      this.account(seq, null);
      throw e;
    }
    const t1 = performance.now();
    this.leave(t1);
    this.account(seq, { t0, t1, w, tensors: names.length, trace, label, accounted });
    return t1 - t0;
  }

  private leave(t1: number): void {
    if (--this.active === 0) this.busyMs += t1 - this.activeSinceMs;
  }

  private account(seq: number, step: FinishedStep | null): void {
    this.finished.set(seq, step);
    while (this.finished.has(this.accounted)) {
      const f = this.finished.get(this.accounted);
      this.finished.delete(this.accounted++);
      if (f) this.add(f);
    }
  }

  /** Add one step to the running totals (steps come in call order: their t0 never decreases). */
  private add({ t0, t1, w, tensors, trace, label, accounted }: FinishedStep): void {
    const sum = this.timing;
    sum.steps++;
    const ownMs = Math.max(0, t1 - Math.max(t0, this.wallEndMs));
    sum.wallMs += ownMs;
    this.wallEndMs = Math.max(this.wallEndMs, t1);
    accounted?.(ownMs);
    if (w.tasks > 0) {
      // the workers' epoch times on this clock: step() stamps its call right at t0
      const firstStart = t0 + w.startLatencyMs;
      const lastEnd = firstStart + w.workerSpanMs;
      sum.startLatencyMs += Math.max(0, firstStart - Math.max(t0, this.spanEndMs, this.startEndMs));
      this.startEndMs = Math.max(this.startEndMs, firstStart);
      sum.workerSpanMs += Math.max(0, lastEnd - Math.max(firstStart, this.spanEndMs));
      this.spanEndMs = Math.max(this.spanEndMs, lastEnd);
    }
    sum.noticeLatencyMs = Math.max(0, sum.wallMs - sum.workerSpanMs - sum.startLatencyMs);
    sum.threadBusyMs += w.threadBusyMs;
    // the step's own split (its wall time t0..t1, as returned; the notice runs from the last worker's end
    // to this continuation, which may wait behind other microtasks after the step resolves)
    const round = (ms: number) => Math.round(ms * 1000) / 1000;
    trace?.add(label, TRACE_THREADS.optimizer, t0, t1, {
      tensors,
      workerSpanMs: round(w.workerSpanMs),
      startLatencyMs: round(w.startLatencyMs),
      noticeLatencyMs: round(t1 - t0 - w.startLatencyMs - w.workerSpanMs),
      threadBusyMs: round(w.threadBusyMs),
    });
  }
}
