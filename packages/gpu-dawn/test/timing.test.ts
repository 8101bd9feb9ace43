// GPU timer: regions of known relative cost order correctly, multi-pass and nested regions, no stalls,
// JSON and Chrome-trace schema, capacity overflow and the fallback without timestamp-query.
import { describe, expect, it } from 'vitest';
import { GpuRuntime, GpuTimer, GPU_TIMING_SCHEMA, type GpuTimingReport, type Tensor } from '../src/index.js';
import { Params } from '../src/reference.js';
import { NAN_BITS, useGpu } from './harness.js';

const gpu = useGpu();

// A kernel whose cost is proportional to `iterations` (a dependent multiply-add chain per invocation).
const BUSY_WGSL = /* wgsl */ `
struct Params { iterations: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = f32(gid.x);
  for (var i = 0u; i < p.iterations; i++) { a = a * 0.9999999 + 0.5; }
  out[gid.x] = a;
}`;
const GROUPS = 32;

function busy(g: GpuRuntime, out: Tensor, iterations: number): void {
  g.dispatch({
    label: 'busy',
    pipeline: g.pipeline('timing-test-busy', () => BUSY_WGSL),
    bindings: [out],
    params: new Params().u32(iterations),
    workgroups: [GROUPS],
  });
}

function outTensor(g: GpuRuntime): Tensor {
  const t = g.tensor('busy.out', 'f32', [GROUPS * 64], 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}

describe('GpuTimer', () => {
  it('orders regions of known relative cost and aggregates count/total/mean/min/max', async () => {
    const g = gpu();
    const timer = new GpuTimer(g);
    expect(timer.supported).toBe(true);
    const out = outTensor(g);
    busy(g, out, 10); // compile the pipeline outside the regions
    await g.sync();
    for (let rep = 0; rep < 3; rep++) {
      timer.region('light', () => busy(g, out, 1500));
      timer.region('heavy', () => busy(g, out, 12000));
      timer.region('empty', () => undefined);
    }
    await timer.settle();
    const byName = new Map(timer.regions().map((r) => [r.name, r]));
    const light = byName.get('light')!;
    const heavy = byName.get('heavy')!;
    expect(light.count).toBe(3);
    expect(heavy.count).toBe(3);
    expect(light.passes).toBe(3);
    expect(byName.get('empty')).toMatchObject({ count: 3, passes: 0, totalMs: 0 });
    for (const r of [light, heavy]) {
      expect(r.minMs).toBeGreaterThan(0);
      expect(r.minMs).toBeLessThanOrEqual(r.meanMs);
      expect(r.meanMs).toBeLessThanOrEqual(r.maxMs);
      expect(r.totalMs).toBeCloseTo(r.meanMs * r.count, 9);
    }
    // 8x the work: at least 3x the time. Minima, because noise on a shared CPU only ever adds time.
    expect(heavy.minMs).toBeGreaterThan(3 * light.minMs);
    expect(heavy.meanMs).toBeGreaterThan(light.meanMs);
    timer.destroy();
    out.release();
  });

  it('records without waiting: results arrive only after the GPU work completes', async () => {
    const g = gpu();
    const timer = new GpuTimer(g);
    const out = outTensor(g);
    const t0 = performance.now();
    timer.region('async', () => busy(g, out, 40000));
    g.submit();
    const recordMs = performance.now() - t0;
    expect(timer.report().pendingOccurrences).toBe(1);
    expect(timer.regions()).toEqual([]);
    await timer.settle();
    const r = timer.regions()[0]!;
    expect(r.name).toBe('async');
    expect(recordMs).toBeLessThan(r.meanMs); // recording took less than the GPU work it queued
    expect(timer.report().pendingOccurrences).toBe(0);
    timer.destroy();
    out.release();
  });

  it('times regions spanning several passes, nested regions, and async region functions', async () => {
    const g = gpu();
    const timer = new GpuTimer(g);
    const out = outTensor(g);
    const copy = g.tensor('copy', 'f32', [GROUPS * 64], 'workspace');
    timer.begin('outer');
    busy(g, out, 2000);
    timer.begin('inner');
    busy(g, out, 2000);
    g.commandEncoder().copyBufferToBuffer(out.buffer, 0, copy.buffer, 0, out.bindingSize); // ends the pass
    busy(g, out, 2000);
    timer.end('inner');
    const value = await timer.region('async-fn', async () => {
      busy(g, out, 100);
      await Promise.resolve();
      return 42;
    });
    expect(value).toBe(42);
    timer.end('outer');
    await timer.settle();
    const byName = new Map(timer.regions().map((r) => [r.name, r]));
    expect(byName.get('inner')!.passes).toBe(2);
    expect(byName.get('outer')!.passes).toBe(4);
    expect(byName.get('outer')!.totalMs).toBeGreaterThan(byName.get('inner')!.totalMs);
    expect(byName.get('async-fn')!.count).toBe(1);
    const trace = timer.traceEvents();
    const span = (name: string) => trace.find((e) => e.name === name && e.ph === 'X')!;
    const outer = span('outer');
    const inner = span('inner');
    // Nested on one track: the inner span lies inside the outer one.
    expect(inner.ts).toBeGreaterThanOrEqual(outer.ts);
    expect(inner.ts + inner.dur!).toBeLessThanOrEqual(outer.ts + outer.dur! + 1e-6);
    timer.destroy();
    out.release();
    copy.release();
  });

  it('exports a JSON report and Chrome trace events on the performance.now() timeline', async () => {
    const g = gpu();
    const timer = new GpuTimer(g);
    const out = outTensor(g);
    const cpuStartMs = performance.now();
    for (let i = 0; i < 4; i++) timer.region(`step`, () => busy(g, out, 500 + 500 * i));
    await timer.settle();
    const cpuEndMs = performance.now();
    const report = JSON.parse(JSON.stringify(timer)) as GpuTimingReport;
    expect(report).toMatchObject({
      schema: GPU_TIMING_SCHEMA,
      adapter: g.ctx.report.description,
      supported: true,
      droppedPasses: 0,
      incompleteOccurrences: 0,
      pendingOccurrences: 0,
    });
    expect(typeof report.clockOffsetMs).toBe('number');
    expect(report.regions).toHaveLength(1);
    expect(Object.keys(report.regions[0]!).sort()).toEqual(
      ['count', 'maxMs', 'meanMs', 'minMs', 'name', 'passes', 'totalMs'].sort(),
    );
    const events = timer.traceEvents({ pid: 7, tid: 3 });
    expect(events[0]).toMatchObject({ ph: 'M', name: 'thread_name', pid: 7, tid: 3 });
    const spans = events.filter((e) => e.ph === 'X');
    expect(spans).toHaveLength(4);
    let previousEnd = -Infinity;
    for (const e of spans) {
      expect(e).toMatchObject({ name: 'step', cat: 'gpu', pid: 7, tid: 3 });
      expect(e.dur!).toBeGreaterThan(0);
      expect(e.args!.passes).toBe(1);
      // In order, not overlapping, and inside the CPU window that recorded and awaited them (µs).
      expect(e.ts).toBeGreaterThanOrEqual(previousEnd - 1);
      previousEnd = e.ts + e.dur!;
      expect(e.ts).toBeGreaterThanOrEqual(cpuStartMs * 1000 - 1);
      expect(e.ts + e.dur!).toBeLessThanOrEqual(cpuEndMs * 1000 + 1);
    }
    // Later steps do more work.
    expect(spans[3]!.dur!).toBeGreaterThan(spans[0]!.dur!);
    const shifted = timer.traceEvents({ timeOriginMs: performance.timeOrigin });
    expect(shifted[1]!.ts - spans[0]!.ts).toBeCloseTo(performance.timeOrigin * 1000, 0);
    timer.destroy();
    out.release();
  });

  it('reports passes beyond its query capacity as dropped instead of failing', async () => {
    const g = gpu();
    const timer = new GpuTimer(g, { capacityPasses: 4 });
    const out = outTensor(g);
    timer.begin('many-passes');
    for (let i = 0; i < 10; i++) {
      busy(g, out, 10);
      g.endPass();
    }
    timer.end('many-passes');
    timer.region('still-full', () => busy(g, out, 10)); // no query free until the next readback
    await timer.settle();
    const report = timer.report();
    expect(report.droppedPasses).toBe(7);
    expect(report.incompleteOccurrences).toBe(2);
    expect(report.regions).toEqual([]);
    // Capacity comes back once results are read: later regions are timed again.
    timer.region('later', () => busy(g, out, 10));
    await timer.settle();
    expect(timer.regions().map((r) => r.name)).toContain('later');
    timer.destroy();
    out.release();
  });

  it('checks region nesting and one timer per runtime with clear errors', () => {
    const timer = new GpuTimer(gpu());
    expect(() => new GpuTimer(gpu())).toThrow(/already has a timer/);
    expect(() => timer.end()).toThrow(/without an open region/);
    timer.begin('a');
    expect(() => timer.end('b')).toThrow(/GpuTimer.end\('b'\) but the innermost open region is 'a'/);
    timer.end('a');
    timer.destroy();
  });

  it('falls back cleanly without timestamp-query: no timing, a clear reason, no crash', async () => {
    const g = await GpuRuntime.create({ disableFeatures: ['timestamp-query'] });
    try {
      const timer = new GpuTimer(g);
      expect(timer.supported).toBe(false);
      expect(timer.reason).toMatch(/no 'timestamp-query' feature/);
      const out = outTensor(g);
      expect(timer.region('r', () => (busy(g, out, 10), 5))).toBe(5);
      await timer.settle();
      await g.sync('fallback');
      const report = timer.toJSON();
      expect(report).toMatchObject({ supported: false, regions: [], clockOffsetMs: null });
      expect(report.reason).toBe(timer.reason);
      expect(timer.traceEvents().filter((e) => e.ph === 'X')).toEqual([]);
      timer.destroy();
    } finally {
      g.destroy();
    }
  });
});
