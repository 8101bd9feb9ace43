// Spans of one training step on the CPU side (main thread recording, waits, transfers, the CPU optimizer
// on its worker threads), exported as Chrome/Perfetto trace events that merge with the GPU timer's.
import type { TraceEvent } from '@lsp-offload/gpu-dawn';
import { assignLanes } from './trace-lanes.js';

export const TRACE_PID = 1;
export const TRACE_THREADS = { main: 1, optimizer: 2, transfers: 3, gpu: 4, offloadModel: 5 } as const;

/** The track of a thread's extra lane (lane 0 is the thread's own track). */
const laneTid = (tid: number, lane: number): number => tid * 100 + lane;

interface Span {
  name: string;
  tid: number;
  startMs: number;
  durMs: number;
  args?: Record<string, string | number>;
}

export class StepTrace {
  private readonly spans: Span[] = [];

  constructor(readonly step: number) {}

  add(
    name: string,
    tid: number,
    startMs: number,
    endMs: number,
    args?: Record<string, string | number>,
  ): void {
    this.spans.push({ name, tid, startMs, durMs: Math.max(0, endMs - startMs), ...(args && { args }) });
  }

  /** Time `fn` as a span (sync or async). */
  async time<T>(name: string, tid: number, fn: () => T | Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.add(name, tid, t0, performance.now());
    }
  }

  events(): TraceEvent[] {
    const names: [number, string][] = [
      [TRACE_THREADS.main, 'main thread (records GPU work)'],
      [TRACE_THREADS.optimizer, 'CPU optimizer (worker threads)'],
      [TRACE_THREADS.transfers, 'transfers'],
    ];
    // overlapping spans of a thread (transfers of several layers in flight) go to extra tracks
    const tids = this.spans.map((s) => s.tid);
    for (const [tid, name] of [...names]) {
      const own = this.spans.map((s, i) => [s, i] as const).filter(([s]) => s.tid === tid);
      const lanes = assignLanes(own.map(([s]) => s));
      own.forEach(([, i], k) => {
        if (lanes[k]! > 0) tids[i] = laneTid(tid, lanes[k]!);
      });
      for (let lane = 1; lane <= Math.max(0, ...lanes); lane++)
        names.push([laneTid(tid, lane), `${name} ${lane + 1}`]);
    }
    return [
      {
        name: 'process_name',
        ph: 'M',
        ts: 0,
        pid: TRACE_PID,
        tid: 0,
        args: { name: `lsp-offload step ${this.step}` },
      },
      ...names.map(([tid, name]): TraceEvent => ({
        name: 'thread_name',
        ph: 'M',
        ts: 0,
        pid: TRACE_PID,
        tid,
        args: { name },
      })),
      ...this.spans.map((s, i): TraceEvent => ({
        name: s.name,
        cat: 'cpu',
        ph: 'X',
        // whole microseconds: spans that touch (one closes as the next opens) share a boundary exactly
        ts: Math.round(s.startMs * 1000),
        dur: Math.round((s.startMs + s.durMs) * 1000) - Math.round(s.startMs * 1000),
        pid: TRACE_PID,
        tid: tids[i]!,
        ...(s.args && { args: s.args }),
      })),
    ];
  }
}
