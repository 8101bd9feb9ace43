import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import { SparseProjector } from '../../src/projectors/sparse-projector.js';
import { cosineLearningRate, HostAdam } from '../../src/projectors/host-adam.js';
import { evaluatePair, gradientNorms } from '../../src/projectors/pair-evaluation.js';
import { learnProjectorPair } from '../../src/projectors/projector-learning.js';
import {
  reconstructionErrorGradientReference,
  reconstructionErrorReference,
} from '../../src/projectors/reconstruction-reference.js';
import { Rng } from '../../src/util/rng.js';
import { lowRankGradient, maxRelativeError } from './helpers.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

function upload(gs: Float64Array[], rows: number, cols: number): Tensor[] {
  return gs.map((g, j) => gpu.upload(`G${j}`, 'f32', [rows, cols], g));
}

describe('host Adam and the cosine schedule', () => {
  it('Adam takes a first step of lr * sign(g) and the schedule decays from lr to 0', () => {
    const adam = new HostAdam(2);
    const p = Float64Array.of(1, 1);
    adam.update(p, [3, -0.001], 0.1);
    expect(p[0]).toBeCloseTo(0.9, 6);
    expect(p[1]).toBeCloseTo(1.1, 4);
    expect(cosineLearningRate(0.1, 0, 100)).toBe(0.1);
    expect(cosineLearningRate(0.1, 50, 100)).toBeCloseTo(0.05, 12);
    expect(cosineLearningRate(0.1, 100, 100)).toBeCloseTo(0, 12);
  });
});

describe('learning a projector pair', () => {
  it('evaluatePair over several gradients gives each e and the gradient of the mean e', async () => {
    const rng = new Rng(11);
    const [rows, cols, d, r] = [15, 10, 4, 2];
    const gs = [
      lowRankGradient(rng, rows, cols, 3),
      lowRankGradient(rng, rows, cols, 5),
      new Float64Array(rows * cols),
    ];
    const l = SparseProjector.random(rows, d, r, rng);
    const rp = SparseProjector.random(cols, d, r, rng);
    const ts = upload(gs, rows, cols);
    const norms = await gradientNorms(gpu, ts);
    expect(norms[2]).toBe(0);
    const [lg, rg] = [l.toGpu(gpu, 'L'), rp.toGpu(gpu, 'R')];
    const ev = await evaluatePair(gpu, ts, norms, lg, rg, true);
    // the zero gradient is left out of the mean (it has nothing to reconstruct)
    const want = gs.slice(0, 2).map((g) => reconstructionErrorGradientReference(g, rows, cols, l, rp));
    expect(ev.errors[0]).toBeCloseTo(want[0]!.error, 5);
    expect(ev.errors[1]).toBeCloseTo(want[1]!.error, 5);
    expect(ev.errors[2]).toBe(0);
    expect(ev.meanError).toBeCloseTo((want[0]!.error + want[1]!.error) / 2, 5);
    const meanLeft = want[0]!.left.map((x, k) => (x + want[1]!.left[k]!) / 2);
    const meanRight = want[0]!.right.map((x, k) => (x + want[1]!.right[k]!) / 2);
    expect(maxRelativeError(ev.left!, meanLeft)).toBeLessThan(1e-4);
    expect(maxRelativeError(ev.right!, meanRight)).toBeLessThan(1e-4);
  });

  it('bestScale is the least-squares scale of the reconstruction, and its error is what rescaling gives', async () => {
    const rng = new Rng(12);
    const [rows, cols, d, r] = [26, 19, 5, 2];
    const g = lowRankGradient(rng, rows, cols, 4);
    const l = SparseProjector.random(rows, d, r, rng);
    const rp = SparseProjector.random(cols, d, r, rng);
    const ts = upload([g], rows, cols);
    const ev = await evaluatePair(
      gpu,
      ts,
      await gradientNorms(gpu, ts),
      l.toGpu(gpu, 'L'),
      rp.toGpu(gpu, 'R'),
      false,
    );
    // random N(0, 1/r) values over-scale L L^T by about rows/d: e is far above 1 until rescaled
    expect(ev.meanError).toBeGreaterThan(1);
    expect(ev.bestScale).toBeLessThan(1);
    const scaled = (c: number): number => {
      const f = c ** 0.25;
      const [ls, rs] = [l.clone(), rp.clone()];
      ls.values.forEach((v, i) => (ls.values[i] = v * f));
      rs.values.forEach((v, i) => (rs.values[i] = v * f));
      return reconstructionErrorReference(g, rows, cols, ls, rs);
    };
    const atBest = scaled(ev.bestScale);
    expect(atBest).toBeCloseTo(ev.meanErrorAtBestScale, 4);
    expect(atBest).toBeLessThan(1);
    expect(atBest).toBeLessThan(scaled(ev.bestScale * 1.05));
    expect(atBest).toBeLessThan(scaled(ev.bestScale * 0.95));
  });

  it('Adam on the values lowers the error well below random on low-rank gradients, positions fixed', async () => {
    const rng = new Rng(5);
    const [rows, cols, d, r] = [24, 18, 8, 2];
    const ts = upload([lowRankGradient(rng, rows, cols, 3)], rows, cols);
    const start = {
      left: SparseProjector.random(rows, d, r, rng),
      right: SparseProjector.random(cols, d, r, rng),
    };
    const res = await learnProjectorPair(gpu, ts, start, { lr: 0.1, maxIterations: 60, plateau: null });
    expect(res.iterations).toBe(60);
    expect(res.plateaued).toBe(false);
    expect(res.history).toHaveLength(61);
    // the start is rescaled first (history[0]), then Adam takes over
    expect(res.history[0]).toBeLessThan(res.startError);
    expect(res.meanError).toBeLessThan(0.5 * res.history[0]!);
    expect(res.meanError).toBe(Math.min(...res.history));
    expect(res.left.positions).toEqual(start.left.positions);
    expect(res.right.positions).toEqual(start.right.positions);
    expect(res.left.values).not.toEqual(start.left.values);
    expect(res.reachedTarget).toBe(false);
  });

  it('a shared pair minimises the mean over several gradients and stops early at the target', async () => {
    const rng = new Rng(8);
    const [rows, cols, d, r] = [20, 14, 8, 3];
    const ts = upload([lowRankGradient(rng, rows, cols, 2), lowRankGradient(rng, rows, cols, 2)], rows, cols);
    const start = {
      left: SparseProjector.random(rows, d, r, rng),
      right: SparseProjector.random(cols, d, r, rng),
    };
    const free = await learnProjectorPair(gpu, ts, start, { lr: 0.1, maxIterations: 40, plateau: null });
    const target = (free.history[0]! + free.meanError) / 2;
    const early = await learnProjectorPair(gpu, ts, start, {
      lr: 0.1,
      maxIterations: 40,
      plateau: null,
      targetError: target,
    });
    expect(early.reachedTarget).toBe(true);
    expect(early.iterations).toBeLessThan(40);
    expect(early.meanError).toBeLessThanOrEqual(target);
    expect(early.history.at(-1)).toBe(early.meanError);
    expect(early.errors).toHaveLength(2);
  });

  it('stops on a plateau: the best error gained less than minGain over the last window iterations', async () => {
    const rng = new Rng(11);
    const [rows, cols, d, r] = [40, 36, 12, 2];
    // full-rank gradients a (12, 2) pair cannot reconstruct well: the fit flattens far above 0
    const ts = upload(
      [0, 1].map(() => lowRankGradient(rng, rows, cols, 30)),
      rows,
      cols,
    );
    const start = {
      left: SparseProjector.random(rows, d, r, rng),
      right: SparseProjector.random(cols, d, r, rng),
    };
    const full = await learnProjectorPair(gpu, ts, start, { lr: 0.1, maxIterations: 200, plateau: null });
    const plateau = { window: 10, minGain: 0.005 };
    const early = await learnProjectorPair(gpu, ts, start, { lr: 0.1, maxIterations: 200, plateau });
    expect(full.iterations).toBe(200);
    expect(early.plateaued).toBe(true);
    expect(early.iterations).toBeLessThan(200);
    // the same path up to the stop (same start, same steps), and the stop rule holds where it stopped
    expect(early.history).toEqual(full.history.slice(0, early.history.length));
    const bestAt = (t: number) => Math.min(...early.history.slice(0, t + 1));
    const t = early.history.length - 1;
    expect(bestAt(t - 10) - bestAt(t)).toBeLessThan(plateau.minGain * bestAt(t - 10));
    expect(bestAt(t - 11) - bestAt(t - 1)).toBeGreaterThanOrEqual(plateau.minGain * bestAt(t - 11));
    // and it gave up little: within 5 % of the full run's error
    expect(early.meanError).toBeLessThan(full.meanError * 1.05);
  });
});
