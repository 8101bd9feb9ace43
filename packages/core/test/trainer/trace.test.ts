// The Perfetto trace of a step: no two complete events on one track overlap without nesting (Perfetto
// drops those), every track is named, the main thread's spans say what was being recorded, and the
// modelled offload critical path has its own tracks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime, type TraceEvent } from '@lsp-offload/gpu-dawn';
import { ModelWeights, Rng, Trainer, parseModelConfig } from '../../src/index.js';
import { assignLanes } from '../../src/trainer/trace-lanes.js';
import { TRACE_THREADS } from '../../src/trainer/trace.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

/** Pairs of complete events on one track that overlap partially (neither contains the other). */
function badOverlaps(events: readonly TraceEvent[]): string[] {
  const tracks = new Map<string, TraceEvent[]>();
  for (const e of events.filter((x) => x.ph === 'X')) {
    const key = `${e.pid}/${e.tid}`;
    tracks.set(key, [...(tracks.get(key) ?? []), e]);
  }
  const bad: string[] = [];
  for (const [key, list] of tracks)
    for (let i = 0; i < list.length; i++)
      for (let j = i + 1; j < list.length; j++) {
        const [a, b] = [list[i]!, list[j]!];
        const [a0, a1, b0, b1] = [a.ts, a.ts + a.dur!, b.ts, b.ts + b.dur!];
        const disjoint = a1 <= b0 || b1 <= a0;
        const nested = (a0 <= b0 && b1 <= a1) || (b0 <= a0 && a1 <= b1);
        if (!disjoint && !nested) bad.push(`${key}: '${a.name}' and '${b.name}'`);
      }
  return bad;
}

describe('step traces', () => {
  it('lanes: spans of one lane never overlap, and a lane is added only when all are busy', () => {
    const rng = new Rng(5);
    const spans = Array.from({ length: 200 }, () => ({ startMs: rng.next() * 100, durMs: rng.next() * 10 }));
    const lanes = assignLanes(spans);
    for (let i = 0; i < spans.length; i++)
      for (let j = i + 1; j < spans.length; j++) {
        if (lanes[i] !== lanes[j]) continue;
        const [a, b] = [spans[i]!, spans[j]!];
        expect(a.startMs + a.durMs <= b.startMs || b.startMs + b.durMs <= a.startMs).toBe(true);
      }
    // the lane count is the largest number of spans in flight at once
    const points = spans.map((s) => s.startMs);
    const inFlight = Math.max(
      ...points.map((t) => spans.filter((s) => s.startMs <= t && t < s.startMs + s.durMs).length),
    );
    expect(Math.max(...lanes) + 1).toBe(inFlight);
  });

  it('an lsp step: no overlapping events on a track, every track named, segments labelled by what they record', async () => {
    const config = parseModelConfig({
      model_type: 'llama',
      vocab_size: 53,
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 32,
      tie_word_embeddings: false,
    });
    const weights = ModelWeights.random(gpu, config, 'f32', new Rng(2), 0.1);
    const trainer = await Trainer.create(gpu, weights, {
      mode: 'lsp',
      rank: 8,
      nnz: 2,
      threads: 2,
      nonProjected: 'adamw',
    });
    try {
      const rng = new Rng(3);
      const batch = () => {
        const ids = Int32Array.from({ length: 2 * 16 }, () => rng.below(53));
        return { batch: 2, seqLen: 16, inputIds: ids, labels: ids };
      };
      await trainer.trainStep(batch());
      trainer.traceNextStep();
      const traced = await trainer.trainStep(batch());
      await trainer.trainStep(batch());
      const events = (await trainer.takeTrace())!;
      // the CPU steps as the workers saw them: the step's metrics and each optimizer span's args
      const t = traced.cpuStepTiming;
      expect(t.steps).toBeGreaterThan(0);
      for (const v of Object.values(t)) expect(v).toBeGreaterThanOrEqual(0);
      expect(t.startLatencyMs + t.workerSpanMs + t.noticeLatencyMs).toBeCloseTo(t.wallMs, 6);
      expect(t.wallMs).toBeCloseTo(traced.workerBusyMs, 6);
      const optimizer = events.filter(
        (e) =>
          e.ph === 'X' &&
          (e.tid === TRACE_THREADS.optimizer || Math.floor(e.tid / 100) === TRACE_THREADS.optimizer),
      );
      expect(optimizer.length).toBeGreaterThan(0);
      for (const e of optimizer)
        for (const k of ['workerSpanMs', 'startLatencyMs', 'noticeLatencyMs', 'threadBusyMs'])
          expect(Number(e.args?.[k]), `${e.name} ${k}`).toBeGreaterThanOrEqual(0);
      expect(badOverlaps(events)).toEqual([]);
      const named = new Set(events.filter((e) => e.name === 'thread_name').map((e) => `${e.pid}/${e.tid}`));
      for (const e of events.filter((x) => x.ph === 'X'))
        expect(named.has(`${e.pid}/${e.tid}`), e.name).toBe(true);
      const names = events.filter((e) => e.ph === 'X').map((e) => e.name);
      for (const label of [
        'record forward L0',
        'record head, loss, backward L2',
        'record backward L1',
        'record backward L0',
        'record embedding backward',
      ])
        expect(names).toContain(label);
      expect(names.filter((n) => /L-1/.test(n))).toEqual([]);
      expect(names.filter((n) => n.startsWith('download ')).length).toBeGreaterThan(3);
      // the offload critical path as modelled (GPU time 0): each unit's download, CPU step and upload on
      // three tracks, every CPU step after its download, the last upload ending at the figure
      const model = events.filter((e) => e.cat === 'offload model');
      for (const unit of ['L2', 'L1', 'L0', 'embeddings', 'head']) {
        const down = model.find((e) => e.name === `download ${unit}`);
        const cpu = model.find((e) => e.name === `cpu ${unit}`);
        expect(down && cpu, unit).toBeTruthy();
        expect(cpu!.ts).toBeGreaterThanOrEqual(down!.ts + down!.dur!);
      }
      const title = events.find((e) => String(e.args?.['name']).startsWith('offload critical path'));
      const total = Number(/\(([\d.]+) ms\)/.exec(String(title!.args!['name']))![1]);
      const end = Math.max(...model.map((e) => e.ts + e.dur!)) - Math.min(...model.map((e) => e.ts));
      expect(Math.abs(end / 1000 - total)).toBeLessThan(0.1);
    } finally {
      await trainer.destroy();
      weights.release();
    }
  });
});
