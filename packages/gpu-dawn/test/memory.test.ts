import { describe, expect, it } from 'vitest';
import { GpuMemoryError, axpby, sizeClass } from '../src/index.js';
import { Params } from '../src/reference.js';
import { useGpu } from './harness.js';

const gpu = useGpu({ budgetBytes: 8 << 20 });

describe('budgeted GPU memory', () => {
  it('size classes waste at most 12.5% above 64 KiB and are monotone', () => {
    let prev = 0;
    for (let b = 1; b < 1 << 24; b = Math.ceil(b * 1.37) + 1) {
      const c = sizeClass(b);
      expect(c).toBeGreaterThanOrEqual(b);
      expect(c).toBeGreaterThanOrEqual(prev);
      if (b > 65536) expect(c / b).toBeLessThanOrEqual(1.125);
      prev = c;
    }
  });

  it('accounts by category, tracks the peak and reuses freed buffers', () => {
    const m = gpu().memory;
    const before = m.stats();
    const a = gpu().tensor('w', 'f16', [1001, 513], 'weights');
    const b = gpu().tensor('act', 'f32', [77, 99], 'activations');
    const s = m.stats();
    expect(s.byCategory.weights.usedBytes - before.byCategory.weights.usedBytes).toBe(
      sizeClass(1001 * 513 * 2),
    );
    expect(s.byCategory.activations.usedBytes - before.byCategory.activations.usedBytes).toBe(
      sizeClass(77 * 99 * 4),
    );
    const buf = a.buffer;
    a.release();
    const c = gpu().tensor('w2', 'f16', [1001, 513], 'weights');
    expect(c.buffer).toBe(buf); // reused
    expect(m.stats().peakBytes).toBeGreaterThanOrEqual(s.usedBytes);
    b.release();
    c.release();
  });

  it('tracks the live peak apart from what the pool holds', () => {
    const m = gpu().memory;
    const base = m.stats();
    const x = gpu().tensor('x', 'f32', [3001], 'workspace');
    const y = gpu().tensor('y', 'f32', [5003], 'workspace');
    const both = m.stats().usedBytes;
    x.release();
    y.release();
    const z = gpu().tensor('z', 'f32', [70001], 'workspace'); // bigger than both: not a reuse
    const s = m.stats();
    expect(s.livePeakBytes).toBe(Math.max(base.livePeakBytes, both, s.usedBytes));
    // x and y are cached, so the pool held more than was ever live
    expect(s.peakBytes).toBeGreaterThanOrEqual(s.usedBytes + s.cachedBytes);
    expect(s.peakBytes).toBeGreaterThan(s.livePeakBytes - base.livePeakBytes + base.usedBytes - 1);
    z.release();
  });

  it('refuses an allocation over budget with the largest holders named', () => {
    const big = gpu().tensor('big-weights', 'f32', [5 << 18], 'weights'); // 5 MiB of the 8 MiB budget
    let err: unknown;
    try {
      gpu().tensor('too-much', 'f32', [1 << 20], 'activations');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GpuMemoryError);
    expect(String(err)).toMatch(/budget exhausted: 'too-much' \(activations\) needs 4\.0 MiB/);
    expect(String(err)).toMatch(/big-weights \(weights\) 5\.0 MiB/);
    big.release();
    // cached buffers are trimmed to make room
    const again = gpu().tensor('fits-now', 'f32', [1 << 20], 'activations');
    again.release();
  });

  it('params pack 4-byte fields padded to 16 bytes', () => {
    const p = new Params().u32(7).f32(1.5).i32(-3);
    expect(p.byteLength).toBe(16);
    const v = new DataView(p.buffer);
    expect([v.getUint32(0, true), v.getFloat32(4, true), v.getInt32(8, true)]).toEqual([7, 1.5, -3]);
    expect(() => new Params().u32(-1)).toThrow(/out of range/);
  });
});

describe('freed buffers and unsubmitted work', () => {
  it('never destroys a buffer that recorded-but-unsubmitted commands use, even when the budget forces a trim', async () => {
    const g = gpu();
    const x = g.upload('x', 'f32', [1 << 18], new Float32Array(1 << 18).fill(2)); // 1 MiB each
    const y = g.upload('y', 'f32', [1 << 18], new Float32Array(1 << 18).fill(1));
    const filler = g.tensor('filler', 'f32', [4 << 18], 'workspace'); // the 8 MiB budget is nearly full
    const scratch = g.tensor('scratch', 'f32', [1 << 18], 'workspace'); // fresh buffers start zeroed
    axpby(g, x, scratch, 1, 1); // scratch = 2   (recorded, not submitted)
    axpby(g, scratch, y, 1, 1); // y = 3
    scratch.release(); // freed while unsubmitted commands still use it
    // 6 + 1 (freed, in use by recorded commands) + 2 MiB is over 8: the allocator submits the recorded
    // commands first, then destroys 'scratch' (the GPU keeps it until they ran) and fits 'big'
    const big = g.tensor('big', 'f32', [2 << 18], 'workspace');
    g.write(big, new Float32Array(2 << 18).fill(5));
    await g.sync('after the trim');
    expect((await g.read(y))[0]).toBe(3);
    expect((await g.read(big))[(2 << 18) - 1]).toBe(5);
    for (const t of [x, y, filler, big]) t.release();
  });

  it('a submit for room keeps the scratch of the code recording now alive', async () => {
    const g = gpu();
    const x = g.upload('x', 'f32', [1 << 18], new Float32Array(1 << 18).fill(2));
    const out = g.tensor('out', 'f32', [1 << 18], 'workspace');
    const filler = g.tensor('filler', 'f32', [4 << 18], 'workspace');
    const scratch = g.scratch('scratch', 'f32', [1 << 18]); // released by the next submit()
    axpby(g, x, scratch, 1, 0); // scratch = 2
    const freed = g.tensor('freed', 'f32', [1 << 18], 'workspace');
    axpby(g, x, freed, 1, 0);
    freed.release(); // freed while in use: the next allocation needs it gone
    // 7 MiB live + 1 MiB freed + 0.94 MiB is over 8 MiB: submits for room, 'scratch' must stay its own
    const late = g.tensor('late', 'f32', [15 << 14], 'workspace');
    axpby(g, scratch, out, 1, 0); // out = 2: read after the submit for room
    await g.sync('after the submit for room');
    expect((await g.read(out))[0]).toBe(2);
    for (const t of [x, out, filler, late]) t.release();
  });
});
