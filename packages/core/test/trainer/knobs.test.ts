// The fine-tuning knobs: the learning-rate schedule (transformers' formulas), gradient accumulation (two
// micro-batches step as one batch of both), global-norm clipping (the same coefficient on the GPU and on
// the CPU, from the norm of the real gradients) in every mode, and their validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  DenseGradients,
  ModelWeights,
  Rng,
  Trainer,
  Transformer,
  lrFactor,
  type StepMetrics,
  type TokenBatch,
  type TrainerOptions,
} from '../../src/index.js';
import { maxRelDiff, tinyLlama } from './helpers.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

const config = tinyLlama();

/** Every label kept, so the mean over micro-batches is the mean over their union. */
function batch(seed: number, rows: number, seqLen = 7): TokenBatch {
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: rows * seqLen }, () => rng.below(config.vocabSize));
  return { batch: rows, seqLen, inputIds: ids, labels: ids };
}

function concat(a: TokenBatch, b: TokenBatch): TokenBatch {
  const join = (x: Int32Array, y: Int32Array) => Int32Array.from([...x, ...y]);
  return {
    batch: a.batch + b.batch,
    seqLen: a.seqLen,
    inputIds: join(a.inputIds, b.inputIds),
    labels: join(a.labels, b.labels),
  };
}

async function train(
  options: Partial<TrainerOptions>,
  steps: (TokenBatch | TokenBatch[])[],
): Promise<{ metrics: StepMetrics[]; weights: Map<string, Float32Array> }> {
  const weights = ModelWeights.random(gpu, config, 'f32', new Rng(9), 0.2);
  const trainer = await Trainer.create(gpu, weights, {
    threads: 2,
    lr: 1e-2,
    rank: 8,
    nonProjected: 'adamw',
    // equalities between modes to f32 rounding (mixed precision: mixed-precision.test.ts)
    precision: 'f32',
    ...options,
  });
  const metrics: StepMetrics[] = [];
  try {
    for (const s of steps) metrics.push(await trainer.trainStep(s));
    await trainer.flush();
    return { metrics, weights: await weights.readAll(gpu) };
  } finally {
    await trainer.destroy();
    weights.release();
  }
}

describe('learning-rate schedule', () => {
  it("matches transformers' get_*_schedule_with_warmup (factor of step s at their index s - 1)", () => {
    const at = (lrSchedule: 'constant' | 'linear' | 'cosine') =>
      [1, 2, 3, 4, 5, 6].map((s) => lrFactor({ lrSchedule, warmupSteps: 2, totalSteps: 6 }, s));
    expect(at('constant')).toEqual([0, 0.5, 1, 1, 1, 1]);
    expect(at('linear')).toEqual([0, 0.5, 1, 0.75, 0.5, 0.25]);
    const c = at('cosine');
    const want = [0, 0.5, 1, 0.5 * (1 + Math.SQRT1_2), 0.5, 0.5 * (1 - Math.SQRT1_2)];
    for (let i = 0; i < 6; i++) expect(Math.abs(c[i]! - want[i]!)).toBeLessThan(1e-15);
    expect(lrFactor({ lrSchedule: 'linear', warmupSteps: 0, totalSteps: 4 }, 5)).toBe(0);
  });

  it('every mode uses the scheduled rate: warmup step 1 changes nothing, then native = zero', async () => {
    const schedule = { lrSchedule: 'cosine' as const, warmupSteps: 2, totalSteps: 4 };
    const data = [batch(1, 2), batch(2, 2), batch(3, 2)];
    const before = (await train({ mode: 'native' }, [])).weights;
    const results: Record<string, Map<string, Float32Array>> = {};
    for (const mode of ['native', 'zero', 'lsp'] as const) {
      const first = await train({ mode, ...schedule }, data.slice(0, 1));
      expect(first.metrics[0]!.lr).toBe(0);
      expect(maxRelDiff(first.weights, before), mode).toBe(0);
      const all = await train({ mode, ...schedule }, data);
      expect(all.metrics.map((m) => m.lr)).toEqual([0, 5e-3, 1e-2]);
      results[mode] = all.weights;
    }
    expect(maxRelDiff(results.zero!, results.native!)).toBeLessThan(1e-5);
    expect(maxRelDiff(results.lsp!, before)).toBeGreaterThan(1e-3);
  });
});

describe('gradient accumulation', () => {
  for (const mode of ['native', 'zero', 'lsp'] as const) {
    it(`${mode}: two micro-batches step like one batch holding both`, async () => {
      const [a1, a2, b1, b2] = [batch(11, 1), batch(12, 1), batch(13, 1), batch(14, 1)];
      const accumulated = await train({ mode, gradAccum: 2 }, [
        [a1, a2],
        [b1, b2],
      ]);
      const whole = await train({ mode }, [concat(a1, a2), concat(b1, b2)]);
      expect(maxRelDiff(accumulated.weights, whole.weights)).toBeLessThan(2e-5);
      for (let i = 0; i < 2; i++) {
        expect(Math.abs(accumulated.metrics[i]!.loss - whole.metrics[i]!.loss)).toBeLessThan(1e-5);
        expect(accumulated.metrics[i]!.microBatches).toBe(2);
        expect(accumulated.metrics[i]!.tokens).toBe(whole.metrics[i]!.tokens);
      }
    });
  }
});

describe('gradient clipping', () => {
  it('reports the global norm of the real gradient; native and zero clip alike', async () => {
    const data = [batch(21, 2), batch(22, 2), batch(23, 2)];
    // the first step's norm, independently: dense gradients of the same weights, summed in float64
    const weights = ModelWeights.random(gpu, config, 'f32', new Rng(9), 0.2);
    const model = new Transformer(gpu, weights, { checkpointing: false });
    const sink = new DenseGradients(gpu, weights);
    (await model.trainStep(data[0]!, sink)).loss.release();
    let sumSquares = 0;
    for (const g of (await sink.readAll()).values()) for (const v of g) sumSquares += v * v;
    sink.release();
    model.release();
    weights.release();
    const norm = Math.sqrt(sumSquares);

    const maxGradNorm = norm / 3; // clips every step
    const native = await train({ mode: 'native', maxGradNorm }, data);
    const zero = await train({ mode: 'zero', maxGradNorm }, data);
    expect(Math.abs(native.metrics[0]!.gradNorm! - norm) / norm).toBeLessThan(1e-5);
    expect(Math.abs(zero.metrics[0]!.gradNorm! - norm) / norm).toBeLessThan(1e-5);
    for (let i = 1; i < 3; i++)
      expect(Math.abs(zero.metrics[i]!.gradNorm! - native.metrics[i]!.gradNorm!)).toBeLessThan(1e-5 * norm);
    expect(maxRelDiff(zero.weights, native.weights)).toBeLessThan(1e-5);
    // clipping changed the run (Adam is scale-free only at its first step)
    const unclipped = await train({ mode: 'native' }, data);
    expect(maxRelDiff(native.weights, unclipped.weights)).toBeGreaterThan(1e-4);
    expect(unclipped.metrics[0]!.gradNorm).toBeNull();

    // lsp: the norm of what it steps (compressed gradients and dense non-projected ones), positive and
    // finite; a bound above it leaves the run as without clipping
    const lsp = await train({ mode: 'lsp', maxGradNorm: 1e9 }, data);
    const lspPlain = await train({ mode: 'lsp' }, data);
    expect(lsp.metrics.every((m) => m.gradNorm! > 0 && Number.isFinite(m.gradNorm!))).toBe(true);
    expect(maxRelDiff(lsp.weights, lspPlain.weights)).toBe(0);
  });
});

describe('option validation', () => {
  const cases: [Partial<TrainerOptions>, RegExp][] = [
    [{ gradAccum: 0 }, /gradient accumulation must be an integer >= 1/],
    [{ maxGradNorm: -1 }, /max gradient norm must be a number >= 0/],
    [{ lrSchedule: 'step' as never }, /unknown learning-rate schedule 'step': use constant, linear, cosine/],
    [
      { lrSchedule: 'linear', warmupSteps: 5, totalSteps: 5 },
      /needs its total steps \(5\) above the warmup steps \(5\)/,
    ],
    [{ warmupSteps: 1.5 }, /warmup steps must be an integer >= 0/],
  ];
  for (const [options, message] of cases)
    it(`refuses ${JSON.stringify(options)}`, async () => {
      const weights = ModelWeights.random(gpu, config, 'f32', new Rng(1));
      try {
        await expect(Trainer.create(gpu, weights, { mode: 'native', ...options })).rejects.toThrow(message);
      } finally {
        weights.release();
      }
    });

  it('refuses a step with the wrong number of micro-batches', async () => {
    const weights = ModelWeights.random(gpu, config, 'f32', new Rng(1));
    const trainer = await Trainer.create(gpu, weights, { mode: 'native', gradAccum: 2 });
    try {
      await expect(trainer.trainStep(batch(1, 1))).rejects.toThrow(
        'trainStep got 1 micro-batches; gradient accumulation is set to 2',
      );
    } finally {
      await trainer.destroy();
      weights.release();
    }
  });
});
