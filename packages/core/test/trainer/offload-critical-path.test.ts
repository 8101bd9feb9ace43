// The offload critical path on a synthetic timeline worked out by hand: three pieces through the download
// ring (2 bytes/ms), the CPU step queue and the upload ring (4 bytes/ms).
//   A: down 10 B = 5 ms [0, 5]   cpu 3 ms  [5, 8]    up 8 B = 2 ms  [8, 10]
//   B: down 2 B  = 1 ms [5, 6]   cpu 10 ms [8, 18]   up 4 B = 1 ms  [18, 19]   (waits for A's CPU step)
//   C: down 20 B = 10 ms [6, 16] cpu 1 ms  [18, 19]  up 40 B = 10 ms [19, 29]  (waits for B's CPU step)
// The next step could start 29 ms after an instant backward; the download ring is busiest (16 ms).
import { describe, expect, it } from 'vitest';
import { offloadCriticalPath } from '../../src/trainer/offload-critical-path.js';

const rates = { downBytesPerMs: 2, upBytesPerMs: 4 };

describe('offload critical path', () => {
  it('chains download, CPU step and upload through the three serial stages', () => {
    const path = offloadCriticalPath(
      [
        { label: 'A', bytesDown: 10, cpuMs: 3, bytesUp: 8 },
        { label: 'B', bytesDown: 2, cpuMs: 10, bytesUp: 4 },
        { label: 'C', bytesDown: 20, cpuMs: 1, bytesUp: 40 },
      ],
      rates,
    );
    expect(path.totalMs).toBe(29);
    expect([path.downloadMs, path.cpuMs, path.uploadMs]).toEqual([16, 14, 13]);
    expect(path.bound).toBe('download');
    const span = (label: string, stage: string) =>
      path.spans.find((s) => s.label === label && s.stage === stage);
    expect(span('B', 'cpu')).toEqual({ label: 'B', stage: 'cpu', startMs: 8, endMs: 18 });
    expect(span('B', 'upload')).toMatchObject({ startMs: 18, endMs: 19 });
    expect(span('C', 'cpu')).toMatchObject({ startMs: 18, endMs: 19 });
    expect(span('C', 'upload')).toMatchObject({ startMs: 19, endMs: 29 });
  });

  it('is zero without pieces and refuses rates or pieces that make no sense', () => {
    expect(offloadCriticalPath([], rates)).toMatchObject({ totalMs: 0, bound: 'none', spans: [] });
    expect(() => offloadCriticalPath([], { downBytesPerMs: 0, upBytesPerMs: 1 })).toThrow(/downBytesPerMs/);
    expect(() => offloadCriticalPath([{ label: 'x', bytesDown: -1, cpuMs: 0, bytesUp: 0 }], rates)).toThrow(
      /'x'/,
    );
  });
});
