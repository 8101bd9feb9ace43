// The offload critical path: what the offloading modes' update work of one step (gradients down, the CPU
// optimizer, updates up) would add to a GPU that finished its compute instantly. With GPU time taken as
// zero every gradient exists at once and every forward is instant, so the next step ends when the last
// piece of the update has arrived. The pieces (a unit's gradients, or one row block of a large parameter)
// go through three serial stages in the order the schedule starts them: the download ring (one channel:
// concurrent chunks share its bandwidth), the CPU step queue (one step at a time over all worker
// threads), the upload ring. A flow shop:
//   down_i = down_{i-1} + bytesDown_i / rateDown
//   cpu_i  = max(cpu_{i-1}, down_i) + cpuMs_i
//   up_i   = max(up_{i-1}, cpu_i) + bytesUp_i / rateUp
// and the critical path is up of the last piece. CPU durations are measured (each CPU step, plus the
// host-side work before it); transfer durations are bytes over the rings' measured rates (a transfer in a
// real run also waits for the GPU work recorded before it, so its own duration cannot be read off).
import type { TraceEvent } from '@lsp-offload/gpu-dawn';

export interface OffloadPiece {
  /** e.g. 'L3', 'embeddings (2/4)'. */
  label: string;
  bytesDown: number;
  /** Measured CPU time of the piece: its optimizer step and the host-side work before it. */
  cpuMs: number;
  bytesUp: number;
}

export interface TransferRates {
  /** Bytes per millisecond each way through the staging rings (bytes / ms = GB/s x 1e6). */
  downBytesPerMs: number;
  upBytesPerMs: number;
}

export type OffloadStage = 'download' | 'cpu' | 'upload';

export interface OffloadSpan {
  label: string;
  stage: OffloadStage;
  startMs: number;
  endMs: number;
}

export interface OffloadCriticalPath {
  /** When the last piece's upload ends, from 0 (the end of an instant backward). */
  totalMs: number;
  /** Each stage's busy time (sum over the pieces). */
  downloadMs: number;
  cpuMs: number;
  uploadMs: number;
  /** The stage with the most busy time: what a faster offload path must speed up first. */
  bound: OffloadStage | 'none';
  spans: OffloadSpan[];
}

export function offloadCriticalPath(
  pieces: readonly OffloadPiece[],
  rates: TransferRates,
): OffloadCriticalPath {
  for (const [k, v] of Object.entries(rates))
    if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`transfer rate ${k} must be > 0, got ${v}`);
  const spans: OffloadSpan[] = [];
  let down = 0;
  let cpu = 0;
  let up = 0;
  const busy = { download: 0, cpu: 0, upload: 0 };
  for (const p of pieces) {
    if (!(p.bytesDown >= 0 && p.bytesUp >= 0 && p.cpuMs >= 0))
      throw new RangeError(`offload piece '${p.label}': bytes and CPU time must be >= 0`);
    const stage = (name: OffloadStage, start: number, ms: number): number => {
      spans.push({ label: p.label, stage: name, startMs: start, endMs: start + ms });
      busy[name] += ms;
      return start + ms;
    };
    down = stage('download', down, p.bytesDown / rates.downBytesPerMs);
    cpu = stage('cpu', Math.max(cpu, down), p.cpuMs);
    up = stage('upload', Math.max(up, cpu), p.bytesUp / rates.upBytesPerMs);
  }
  const order: OffloadStage[] = ['download', 'cpu', 'upload'];
  const top = order.reduce((a, b) => (busy[b] > busy[a] ? b : a));
  return {
    totalMs: up,
    downloadMs: busy.download,
    cpuMs: busy.cpu,
    uploadMs: busy.upload,
    bound: pieces.length ? top : 'none',
    spans,
  };
}

/** A step's offload figures as they go into its metrics (null where no offload happened). */
export interface OffloadFigures {
  /** The critical path (see above), in ms. */
  offloadCriticalPathMs: number | null;
  /** Its stages' busy times and the busiest one. */
  offloadDownloadMs: number | null;
  offloadCpuMs: number | null;
  offloadUploadMs: number | null;
  offloadBound: OffloadStage | null;
}

export function offloadFigures(
  pieces: readonly OffloadPiece[] | undefined,
  rates: TransferRates | undefined,
): OffloadFigures {
  if (!pieces?.length || !rates)
    return {
      offloadCriticalPathMs: null,
      offloadDownloadMs: null,
      offloadCpuMs: null,
      offloadUploadMs: null,
      offloadBound: null,
    };
  const path = offloadCriticalPath(pieces, rates);
  return {
    offloadCriticalPathMs: path.totalMs,
    offloadDownloadMs: path.downloadMs,
    offloadCpuMs: path.cpuMs,
    offloadUploadMs: path.uploadMs,
    offloadBound: path.bound === 'none' ? null : path.bound,
  };
}

/**
 * The modelled timeline as trace events on its own track, from `startMs` (the traced step's start): the
 * order and overlap of the three stages show what bounds the offload path.
 */
export function offloadTraceEvents(
  path: OffloadCriticalPath,
  startMs: number,
  pid: number,
  tid: number,
): TraceEvent[] {
  const us = (ms: number) => Math.round((startMs + ms) * 1000);
  const stages: OffloadStage[] = ['download', 'cpu', 'upload'];
  // the three stages overlap in time: one track each
  const track = (stage: OffloadStage) => tid * 100 + stages.indexOf(stage);
  return [
    ...stages.map((stage): TraceEvent => ({
      name: 'thread_name',
      ph: 'M',
      ts: 0,
      pid,
      tid: track(stage),
      args: {
        name: `offload critical path, GPU time 0 (${path.totalMs.toFixed(1)} ms): ${stage}`,
      },
    })),
    ...path.spans.map((s): TraceEvent => ({
      name: `${s.stage} ${s.label}`,
      cat: 'offload model',
      ph: 'X',
      ts: us(s.startMs),
      dur: us(s.endMs) - us(s.startMs),
      pid,
      tid: track(s.stage),
    })),
  ];
}
