// Mixed precision in the trainer: the dynamic loss scale and the guarantee that a non-finite gradient
// never reaches weights or optimizer moments, in every mode.
//   - An overflow forced by a huge initial scale: nothing changes (weights, moments, step counts), the
//     scale halves, the step counts as skipped, and the next step is exactly the run's first update.
//   - An overflow inside one block only (a function-preserving reparametrisation whose gradient
//     overflows f16): native skips the whole step, as GradScaler does; the offloading modes skip each
//     unit whose own gradients are non-finite (that block and everything below it) and step the rest.
//   - Mixed precision trains like f32: losses of a few steps agree within f16 bounds in every mode.
//   - zero's f16 gradients add up over micro-batches in f32 and are rounded once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime, f16Round } from '@lsp-offload/gpu-dawn';
import {
  DenseGradients,
  ModelWeights,
  Transformer,
  Rng,
  Trainer,
  type StepMetrics,
  type TokenBatch,
  type TrainerOptions,
  type TrainMode,
} from '../../src/index.js';
import { tinyLlama } from './helpers.js';
import { ZeroSink } from '../../src/trainer/sinks.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

const config = tinyLlama();
const MODES: TrainMode[] = ['native', 'zero', 'lsp'];

function batch(seed: number, rows = 2, seqLen = 9): TokenBatch {
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: rows * seqLen }, () => rng.below(config.vocabSize));
  return { batch: rows, seqLen, inputIds: ids, labels: ids };
}

/** Weights and every optimizer moment of a trainer, by name. */
async function snapshot(trainer: Trainer): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, w] of await trainer.weights.readAll(gpu)) out.set(`weight ${name}`, w);
  for (const [name, s] of trainer.gpuOptimizerState) {
    out.set(`m ${name}`, (await gpu.read(s.m)) as Float32Array);
    out.set(`v ${name}`, (await gpu.read(s.v)) as Float32Array);
  }
  const cpu = trainer.cpuOptimizer;
  for (const name of cpu?.names() ?? []) {
    out.set(`m ${name}`, cpu!.expAvg(name).slice());
    out.set(`v ${name}`, cpu!.expAvgSq(name).slice());
  }
  return out;
}

/** Names whose values differ between two snapshots (bit for bit: a NaN equals only itself). */
function changed(a: Map<string, Float32Array>, b: Map<string, Float32Array>): string[] {
  const out: string[] = [];
  for (const [name, x] of a) {
    const y = b.get(name)!;
    if (x.some((v, i) => !Object.is(v, y[i]))) out.push(name);
  }
  return out;
}

async function trainer(
  mode: TrainMode,
  options: Partial<TrainerOptions> = {},
  prepare?: (w: ModelWeights) => Promise<void>,
): Promise<Trainer> {
  const weights = ModelWeights.random(gpu, config, 'f32', new Rng(9), 0.2);
  await prepare?.(weights);
  const t = await Trainer.create(gpu, weights, {
    mode,
    precision: 'mixed',
    threads: 2,
    lr: 1e-2,
    rank: 8,
    nonProjected: 'adamw',
    ...options,
  });
  if (mode === 'native') t.ensureGpuOptimizerState();
  return t;
}

async function close(t: Trainer): Promise<void> {
  await t.destroy();
  t.weights.release();
}

describe('loss-scale overflow', () => {
  for (const mode of MODES) {
    it(`${mode}: an overflowing step changes nothing; the scale halves; the next step is the first update`, async () => {
      const skipping = await trainer(mode, { lossScale: { initScale: 2 ** 40, growthInterval: 2000 } });
      const before = await snapshot(skipping);
      const m1 = await skipping.trainStep(batch(1));
      await skipping.flush();
      expect(changed(before, await snapshot(skipping)), 'changed by the skipped step').toEqual([]);
      expect(m1.nonFiniteGradients).toBe(true);
      expect(m1.lossScale).toBe(2 ** 40);
      expect(m1.skippedSteps).toBe(1);
      expect(skipping.lossScaleStatus).toEqual({ scale: 2 ** 39, growthTracker: 0, skippedSteps: 1 });
      // the same run at GradScaler's scale from here: step 2 equals a fresh run's step 1
      skipping.restoreLossScale({ scale: 2 ** 16, growthTracker: 0, skippedSteps: 1 });
      const m2 = await skipping.trainStep(batch(2));
      await skipping.flush();
      expect(m2.nonFiniteGradients).toBe(false);
      const fresh = await trainer(mode);
      await fresh.trainStep(batch(2));
      await fresh.flush();
      const a = await snapshot(skipping);
      const b = await snapshot(fresh);
      expect(changed(a, b), 'after the skipped step vs a fresh run').toEqual([]);
      expect(changed(before, a).length).toBeGreaterThan(0);
      expect(skipping.lossScaleStatus).toEqual({ scale: 2 ** 16, growthTracker: 1, skippedSteps: 1 });
      await close(skipping);
      await close(fresh);
    });
  }

  it('an overflow inside block 0: native skips the whole step, lsp and zero the units it reaches', async () => {
    // layer 0's MLP reparametrised: up / K and down * K compute the same function, but its activation
    // gradient is K times larger and overflows f16; block 1 and the head (above) stay finite
    const K = 2 ** 16;
    const scaleBlock0 = async (w: ModelWeights): Promise<void> => {
      for (const [name, factor] of [
        ['model.layers.0.mlp.up_proj.weight', 1 / K],
        ['model.layers.0.mlp.down_proj.weight', K],
      ] as const) {
        const t = w.get(name);
        const v = (await gpu.read(t)) as Float32Array;
        gpu.write(
          t,
          v.map((x) => x * factor),
        );
      }
    };
    const lowered: Record<string, boolean> = {};
    for (const mode of MODES) {
      const t = await trainer(mode, {}, scaleBlock0);
      const before = await snapshot(t);
      const m: StepMetrics = await t.trainStep(batch(3));
      await t.flush();
      expect(m.nonFiniteGradients, mode).toBe(true);
      expect(t.lossScaleStatus.scale, mode).toBe(2 ** 15);
      const diff = changed(before, await snapshot(t));
      if (mode === 'native') expect(diff, 'native').toEqual([]);
      else {
        // block 0 and the embeddings kept everything; block 1, the final norm and lm_head stepped
        const unit = (n: string) =>
          n.includes('layers.0.') ? 'block 0' : n.includes('embed_tokens') ? 'embeddings' : 'above';
        const stepped = new Set(diff.map(unit));
        expect([...stepped], mode).toEqual(['above']);
        expect(
          diff.some((n) => n.startsWith('weight model.layers.1.')),
          mode,
        ).toBe(true);
        expect(
          diff.some((n) => n.startsWith('weight lm_head')),
          mode,
        ).toBe(true);
      }
      lowered[mode] = true;
      await close(t);
    }
    expect(Object.keys(lowered)).toEqual(MODES);
  });
});

describe('non-finite gradients without a loss scale to blame', () => {
  for (const mode of MODES) {
    it(`${mode}, f32 precision: the step is skipped and the run stops with the reason`, async () => {
      const poison = async (w: ModelWeights): Promise<void> => {
        const t = w.get('model.layers.1.mlp.up_proj.weight');
        const v = (await gpu.read(t)) as Float32Array;
        v[0] = NaN;
        gpu.write(t, v);
      };
      const t = await trainer(mode, { precision: 'f32' }, poison);
      const before = await snapshot(t);
      await expect(t.trainStep(batch(5))).rejects.toThrow(
        /step 1: non-finite gradients; the step was skipped \(weights and optimizer state are as before it\)/,
      );
      await t.flush();
      expect(changed(before, await snapshot(t))).toEqual([]);
      expect(t.lossScaleStatus).toEqual({ scale: 1, growthTracker: 0, skippedSteps: 1 });
      await close(t);
    });
  }
});

describe('mixed precision trains like f32', () => {
  for (const mode of MODES) {
    it(`${mode}: five steps' losses agree with f32 within f16 bounds`, async () => {
      const losses = async (precision: 'mixed' | 'f32'): Promise<number[]> => {
        const t = await trainer(mode, { precision });
        const out: number[] = [];
        for (let s = 0; s < 5; s++) out.push((await t.trainStep(batch(10 + s))).loss);
        await close(t);
        return out;
      };
      const mixed = await losses('mixed');
      const f32 = await losses('f32');
      // the loss falls in both, and the runs stay within 1 % of each other
      expect(f32[4]!).toBeLessThan(f32[0]!);
      for (let s = 0; s < 5; s++)
        expect(
          Math.abs(mixed[s]! - f32[s]!) / f32[s]!,
          `step ${s + 1}: ${mixed[s]} vs ${f32[s]}`,
        ).toBeLessThan(0.01);
    });
  }
});

describe('zero with f16 weights', () => {
  it('adds the gradients of micro-batches up in f32 and rounds them to f16 once', async () => {
    const weights = ModelWeights.random(gpu, config, 'f16', new Rng(4), 0.2);
    const model = new Transformer(gpu, weights, { checkpointing: true, precision: 'mixed' });
    const micro = [batch(31), batch(32)];
    // the reference: f32 gradients of both micro-batches added in f32 (native's sink)
    const dense = new DenseGradients(gpu, weights);
    for (const [i, b] of micro.entries()) {
      dense.accumulate = i > 0;
      (await model.trainStep(b, dense)).loss.release();
    }
    const want = await dense.readAll();
    dense.release();
    const sink = new ZeroSink(gpu, 'f16');
    sink.microBatches = 2;
    for (const [i, b] of micro.entries()) {
      sink.accumulate = i > 0;
      (await model.trainStep(b, sink)).loss.release();
    }
    const got = sink.take(1).dense.find((d) => d.spec.name === 'model.layers.1.mlp.up_proj.weight')!;
    expect(got.grad.dtype).toBe('f16');
    const g = await gpu.read(got.grad);
    const w = want.get('model.layers.1.mlp.up_proj.weight')!;
    // one rounding of the f32 sum: equal to f16(sum) but where the two f32 sums' orders differ by an ulp
    let differ = 0;
    for (let i = 0; i < w.length; i++) if (g[i] !== f16Round(w[i]!)) differ++;
    expect(differ / w.length).toBeLessThan(0.01);
    got.grad.release();
    for (let u = -1; u < config.numLayers; u++) for (const d of sink.take(u).dense) d.grad.release();
    for (const d of sink.take(1 << 20).dense) d.grad.release();
    model.release();
    weights.release();
  });
});
