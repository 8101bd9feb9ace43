// The trainer's GPU timer (gpu-dawn's GpuTimer, created when the adapter has timestamp-query) resolves
// its timestamp queries through GpuMemory: a resolve buffer and a mapped readback per submit, 'staging'.
// Queries in flight never exceed the timer's ring, so these stay within two buffers of the whole ring.
import { sizeClass } from '@lsp-offload/gpu-dawn';
import type { PlannedBuffer } from './planned-buffer.js';

/** Trainer's GpuTimer capacityPasses (query pairs in its ring). */
const TRAINER_TIMER_PAIRS = 2048;
/** Two 8-byte timestamps per pass; resolve offsets are 256-byte aligned. */
const PAIR_BYTES = 16;

export function gpuTimerBuffers(): PlannedBuffer[] {
  const bytes = sizeClass(TRAINER_TIMER_PAIRS * PAIR_BYTES + 256);
  return [
    { label: 'GPU timer query resolve', category: 'staging', usage: 'query-resolve', bytes, count: 1 },
    { label: 'GPU timer query readback', category: 'staging', usage: 'download', bytes, count: 1 },
  ];
}
