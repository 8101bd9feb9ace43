// The staging rings' throughput each way, measured once when the schedule is created: gradient-sized
// downloads from a weight into the CPU optimizer's gradient buffers (the memory real transfers land in,
// already touched), then the same bytes uploaded back where they came from, so the weight is unchanged.
// The offload critical path turns bytes into time with these rates.
import { Buffer } from 'node:buffer';
import type { DownloadRing, Tensor, Transfer, UploadRing } from '@lsp-offload/gpu-dawn';
import type { GpuRuntime } from '@lsp-offload/gpu-dawn';
import type { TransferRates } from './offload-critical-path.js';

export interface MeasuredRates extends TransferRates {
  /** Bytes each timed pass moved. */
  bytes: number;
}

/** Bytes a probe moves at most each way: enough for the rings' steady state, little start-up time. */
export const PROBE_BYTES = 64 << 20;

/**
 * Time downloads from `source` into `hosts` (views of host memory, each at most the source's size; a
 * prefix of them up to `maxBytes`), then uploads of the same bytes back into `source`. The host views
 * are zeroed afterwards. Returns undefined when there is nothing to measure.
 */
export async function probeTransferRates(
  gpu: GpuRuntime,
  down: DownloadRing,
  up: UploadRing,
  source: Tensor,
  hosts: readonly Uint8Array[],
  maxBytes = PROBE_BYTES,
): Promise<MeasuredRates | undefined> {
  const views: Uint8Array[] = [];
  let total = 0;
  for (const h of hosts) {
    if (total >= maxBytes) break;
    const bytes = Math.floor(Math.min(h.byteLength, source.byteLength, maxBytes - total) / 4) * 4;
    if (bytes <= 0) continue;
    views.push(h.subarray(0, bytes));
    total += bytes;
  }
  if (!total) return undefined;
  await gpu.sync('before the transfer probe');
  const timed = async (start: (v: Uint8Array) => Transfer, list: readonly Uint8Array[]) => {
    const t0 = performance.now();
    await Promise.all(list.map((v) => start(v).done));
    return performance.now() - t0;
  };
  const download = (v: Uint8Array) => down.download(source, v, { label: 'transfer probe' });
  const upload = (v: Uint8Array) => up.upload(v, source, { label: 'transfer probe' });
  // a round trip first, so neither timed pass pays for a first use
  await timed(download, views.slice(0, 1));
  await timed(upload, views.slice(0, 1));
  const downMs = await timed(download, views);
  const upMs = await timed(upload, views);
  // a native memset each (typed-array fill on shared memory goes word by word)
  for (const v of views) Buffer.from(v.buffer, v.byteOffset, v.byteLength).fill(0);
  return {
    bytes: total,
    downBytesPerMs: total / Math.max(downMs, 1e-3),
    upBytesPerMs: total / Math.max(upMs, 1e-3),
  };
}
