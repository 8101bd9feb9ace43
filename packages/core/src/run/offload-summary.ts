// What `bench` reports of a mode's offload path over its measured steps: the offload critical path (its
// median step, with that step's stage times and bound), the bytes each way per step by kind, and the
// staging rings' measured throughput.
import type { OffloadStage, TransferRates } from '../trainer/offload-critical-path.js';
import type { TransferKind } from '../trainer/step-recorder.js';
import type { StepMetrics } from '../trainer/trainer.js';
import { formatBytes } from '../util/format-bytes.js';

export interface OffloadSummary {
  /** Median over the measured steps (null for native, or with a single measured step). */
  criticalPathMs: number | null;
  /** The median step's stage busy times and its busiest stage. */
  downloadMs: number | null;
  cpuMs: number | null;
  uploadMs: number | null;
  bound: OffloadStage | null;
  /** Mean bytes per step by kind. */
  bytesByKind: Partial<Record<TransferKind, { toHost: number; toDevice: number }>>;
  /** The rings' throughput, GB/s (1e9 bytes/s), measured when the trainer was created. */
  transferGBps: { down: number; up: number } | null;
}

export function summarizeOffload(
  measured: readonly StepMetrics[],
  rates: TransferRates | undefined,
): OffloadSummary {
  const withPath = measured
    .filter((m) => m.offloadCriticalPathMs !== null)
    .sort((a, b) => a.offloadCriticalPathMs! - b.offloadCriticalPathMs!);
  const mid = withPath[Math.floor(withPath.length / 2)];
  const bytesByKind: OffloadSummary['bytesByKind'] = {};
  for (const m of measured)
    for (const [kind, b] of Object.entries(m.bytesByKind)) {
      const k = (bytesByKind[kind as TransferKind] ??= { toHost: 0, toDevice: 0 });
      k.toHost += b.toHost / measured.length;
      k.toDevice += b.toDevice / measured.length;
    }
  return {
    criticalPathMs: mid?.offloadCriticalPathMs ?? null,
    downloadMs: mid?.offloadDownloadMs ?? null,
    cpuMs: mid?.offloadCpuMs ?? null,
    uploadMs: mid?.offloadUploadMs ?? null,
    bound: mid?.offloadBound ?? null,
    bytesByKind,
    // bytes per ms / 1e6 = GB/s
    transferGBps: rates ? { down: rates.downBytesPerMs / 1e6, up: rates.upBytesPerMs / 1e6 } : null,
  };
}

const KINDS_DOWN: TransferKind[] = ['S', 'gradients', 'embedding rows', 'headers'];
const KINDS_UP: TransferKind[] = ['D', 'parameters'];

/** "S 525 MiB, gradients 4.2 MiB, ..." per step, the kinds that moved anything. */
export function bytesByKindText(s: OffloadSummary, way: 'toHost' | 'toDevice'): string {
  const kinds = way === 'toHost' ? KINDS_DOWN : KINDS_UP;
  const parts = kinds
    .filter((k) => (s.bytesByKind[k]?.[way] ?? 0) > 0)
    .map((k) => `${k} ${formatBytes(s.bytesByKind[k]![way])}`);
  return parts.length ? parts.join(', ') : '-';
}

/** "25.4 / 26.1" GB/s (three digits: small models' rings run far below their bandwidth). */
export function gbpsText(s: OffloadSummary): string {
  return s.transferGBps ? `${s.transferGBps.down.toPrecision(3)} / ${s.transferGBps.up.toPrecision(3)}` : '-';
}

/** The offload lines of bench's text table. */
export function formatOffloadLines(
  results: readonly {
    mode: string;
    budgetBytes?: number;
    medianStepMs: number;
    offload?: OffloadSummary;
    error?: string;
  }[],
): string[] {
  const ms = (x: number | null) => (x === null ? '-' : x.toFixed(1));
  const lines = [
    '',
    'offload path per step: critical path = what the offload work (transfers, CPU step, step-boundary tail) would add',
    "to a GPU that finished its compute at once (measured CPU steps, bytes / the rings' measured GB/s; README)",
    'mode     budget  crit.path ms  down / CPU / up ms (bound)       rings GB/s down / up',
  ];
  const label = (r: (typeof results)[number]) =>
    `${r.mode.padEnd(7)} ${(r.budgetBytes ? `${Math.round(r.budgetBytes / 2 ** 20)}M` : '-').padStart(7)}`;
  for (const r of results) {
    const s = r.offload;
    if (r.error || !s || (s.criticalPathMs === null && !s.transferGBps)) continue;
    const stages = `${ms(s.downloadMs)} / ${ms(s.cpuMs)} / ${ms(s.uploadMs)} (${s.bound ?? '-'})`;
    const gbps = gbpsText(s);
    lines.push(`${label(r)} ${ms(s.criticalPathMs).padStart(13)}  ${stages.padEnd(31)}  ${gbps}`);
  }
  lines.push('', 'bytes per step by kind: down | up');
  for (const r of results) {
    const s = r.offload;
    if (r.error || !s || !Object.keys(s.bytesByKind).length) continue;
    lines.push(`${label(r)}  ${bytesByKindText(s, 'toHost')} | ${bytesByKindText(s, 'toDevice')}`);
  }
  return lines;
}
