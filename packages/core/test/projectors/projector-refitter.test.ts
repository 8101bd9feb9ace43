import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import { SafetensorsFile, listParameters, parseModelConfig, writeSafetensors } from '../../src/hf/index.js';
import { transferMomentsReference } from '../../src/projectors/moment-transfer.js';
import {
  groupLayers,
  projectedLayersOf,
  type ProjectedLayerInfo,
} from '../../src/projectors/projector-groups.js';
import {
  ProjectorRefitter,
  type HeldOutGradients,
  type LayerMoments,
} from '../../src/projectors/projector-refitter.js';
import { ProjectorSet } from '../../src/projectors/projector-set.js';
import { readSparseProjector, sparseProjectorTensors } from '../../src/projectors/projector-safetensors.js';
import { reconstructionError } from '../../src/projectors/reconstruction-error.js';
import { SparseProjector } from '../../src/projectors/sparse-projector.js';
import { zeroNonFiniteOnGpu } from '../../src/projectors/zero-non-finite-gpu.js';
import { Rng } from '../../src/util/rng.js';
import { tempDir } from '../hf/helpers.js';
import { lowRankGradient, maxRelativeError } from './helpers.js';
import { readFileSync } from 'node:fs';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

const LAYERS: ProjectedLayerInfo[] = [
  { name: 'l0.q', type: 'q', rows: 14, cols: 10 },
  { name: 'l0.up', type: 'up', rows: 9, cols: 13 },
  { name: 'l1.q', type: 'q', rows: 14, cols: 10 },
  { name: 'l1.up', type: 'up', rows: 9, cols: 13 },
];

/** Two held-out low-rank gradients per layer, and a record of what was requested. */
function heldOut(rng: Rng): { source: HeldOutGradients; requests: string[][] } {
  const grads = new Map<string, Tensor[]>();
  for (const l of LAYERS) {
    grads.set(
      l.name,
      [0, 1].map((b) =>
        gpu.upload(`${l.name}.grad${b}`, 'f32', [l.rows, l.cols], lowRankGradient(rng, l.rows, l.cols, 2)),
      ),
    );
  }
  const requests: string[][] = [];
  const source: HeldOutGradients = async (names) => {
    requests.push([...names]);
    return new Map(names.map((n) => [n, grads.get(n)!]));
  };
  return { source, requests };
}

describe('projector groups', () => {
  it('the tiny LLaMA fixture has 14 projected layers in 7 types; shared pairs need equal shapes', () => {
    const dir = new URL('../../fixtures/hf/llama-gqa/config.json', import.meta.url);
    const config = parseModelConfig(JSON.parse(readFileSync(dir, 'utf8')));
    const layers = projectedLayersOf(listParameters(config));
    expect(layers).toHaveLength(14);
    expect(layers[0]).toEqual({
      name: 'model.layers.0.self_attn.q_proj.weight',
      type: 'q_proj',
      rows: 40,
      cols: 40,
    });
    expect(layers.find((l) => l.type === 'down_proj')).toMatchObject({ rows: 40, cols: 72 });
    expect(groupLayers(layers, 'type').map((g) => g.key)).toEqual([
      'q_proj',
      'k_proj',
      'v_proj',
      'o_proj',
      'gate_proj',
      'up_proj',
      'down_proj',
    ]);
    expect(groupLayers(layers, 'layer')).toHaveLength(14);
    expect(() => groupLayers([LAYERS[0]!, { ...LAYERS[1]!, type: 'q' }], 'type')).toThrow(/cannot share/);
  });
});

describe('ProjectorRefitter', () => {
  it('refits only pairs above alpha, rewrites the GPU projectors in place and moves the moments', async () => {
    const rng = new Rng(21);
    const d = 5;
    const set = new ProjectorSet(gpu, LAYERS, { d, r: 2, sharing: 'type', seed: 4 });
    const refitter = new ProjectorRefitter(gpu, set, {
      alpha: 0.3,
      learning: { lr: 0.1, maxIterations: 30 },
      layersPerRequest: 2,
    });
    const { source, requests } = heldOut(rng);
    const gpuBefore = set.projectors('l1.q');
    const oldQ = set.hostProjectors('l0.q');
    // l0.q has moments (one with a value that overflows to Inf in the transfer), l1.q none yet
    const m = Float32Array.from({ length: d * d }, () => rng.normal());
    const v = Float32Array.from({ length: d * d }, () => rng.next());
    v[3] = 3e38;
    const state: LayerMoments = {
      m: gpu.upload('m', 'f32', [d, d], m),
      v: gpu.upload('v', 'f32', [d, d], v),
    };
    const moved: string[] = [];
    const report = await refitter.refit(source, {
      get: (layer) => (layer === 'l0.q' ? state : undefined),
      moved: (layer) => void moved.push(layer),
    });

    expect(requests).toEqual([
      ['l0.q', 'l1.q'],
      ['l0.up', 'l1.up'],
    ]);
    expect(report.groups.map((g) => g.group)).toEqual(['q', 'up']);
    for (const g of report.groups) {
      expect(g.errorBefore).toBeGreaterThan(0.3);
      expect(g.learned && g.refitted).toBe(true);
      expect(g.errorAfter).toBeLessThan(g.errorBefore);
      expect(g.history.length).toBe(g.iterations + 1);
    }
    expect(report.layers.map((l) => l.layer)).toEqual(['l0.q', 'l1.q', 'l0.up', 'l1.up']);
    const q = report.groups[0]!;
    const qLayers = report.layers.filter((l) => l.group === 'q');
    expect((qLayers[0]!.errorAfter + qLayers[1]!.errorAfter) / 2).toBeCloseTo(q.errorAfter, 6);

    // the trainer's tensors are the same objects and now hold the learned pair
    const now = set.projectors('l1.q');
    expect(now.left).toBe(gpuBefore.left);
    const grads = await source(['l1.q']);
    const e0 = await reconstructionError(gpu, grads.get('l1.q')![0]!, now.left, now.right);
    const e1 = await reconstructionError(gpu, grads.get('l1.q')![1]!, now.left, now.right);
    expect((e0 + e1) / 2).toBeCloseTo(qLayers[1]!.errorAfter, 4);

    const newQ = set.hostProjectors('l0.q');
    expect(newQ.left.positions).not.toEqual(oldQ.left.positions);
    const want = transferMomentsReference(m, v, oldQ.left, newQ.left, oldQ.right, newQ.right);
    const gotV = (await gpu.read(state.v)) as Float32Array;
    expect(maxRelativeError(await gpu.read(state.m), want.m)).toBeLessThan(1e-5);
    expect([...gotV].every(Number.isFinite)).toBe(true);
    const finiteWant = want.v.map((x) => (Math.abs(x) > 3.4e38 ? 0 : x));
    expect(maxRelativeError(gotV, finiteWant)).toBeLessThan(1e-5);
    expect(moved).toEqual(['l0.q']);
    set.release();
  });

  it('leaves pairs at or below alpha alone; per-layer sharing gives every layer its own pair', async () => {
    const set = new ProjectorSet(gpu, LAYERS, { d: 4, r: 1, sharing: 'layer', seed: 1 });
    const refitter = new ProjectorRefitter(gpu, set, { alpha: 100 });
    expect(set.groups).toHaveLength(4);
    expect(refitter.due(0)).toBe(false);
    // asked to, the random starting pairs are checked before the first step
    expect(new ProjectorRefitter(gpu, set, { alpha: 100, atStart: true }).due(0)).toBe(true);
    expect(refitter.due(100)).toBe(true);
    expect(refitter.due(150)).toBe(false);
    const before = set.hostProjectors('l1.up').left.values.slice();
    const { source, requests } = heldOut(new Rng(2));
    const report = await refitter.refit(source);
    expect(requests).toHaveLength(1);
    for (const l of report.layers) {
      expect(l.refitted).toBe(false);
      expect(l.errorAfter).toBe(l.errorBefore);
    }
    expect(report.groups.every((g) => !g.learned && g.iterations === 0)).toBe(true);
    expect(set.hostProjectors('l1.up').left.values).toEqual(before);
    expect(() => set.projectors('nope')).toThrow(/not a projected layer/);
    set.release();
  });

  it('a projector set checkpoints its pairs and restores them into another; refits then match', async () => {
    const options = { d: 4, r: 2, sharing: 'type', seed: 9 } as const;
    const a = new ProjectorSet(gpu, LAYERS, options);
    const b = new ProjectorSet(gpu, LAYERS, { ...options, seed: 10 });
    const path = join(tempDir(), 'projectors.safetensors');
    await writeSafetensors(path, a.checkpointTensors());
    const file = await SafetensorsFile.open(path);
    await b.restore(file);
    await file.close();
    for (const l of LAYERS) {
      expect(b.hostProjectors(l.name).right.positions).toEqual(a.hostProjectors(l.name).right.positions);
      expect(b.hostProjectors(l.name).right.values).toEqual(a.hostProjectors(l.name).right.values);
      // and on the GPU
      expect(await gpu.read(b.projectors(l.name).left.colValues)).toEqual(
        await gpu.read(a.projectors(l.name).left.colValues),
      );
    }
    // both draw the same pairs from here on
    const next = async (x: ProjectorSet): Promise<Uint32Array> => {
      const { source } = heldOut(new Rng(3));
      await new ProjectorRefitter(gpu, x, { alpha: 0.2 }).refit(source);
      return x.hostProjectors('l0.q').left.positions;
    };
    expect(await next(b)).toEqual(await next(a));
    a.release();
    b.release();
  });
});

describe('projector serialisation and helpers', () => {
  it('a projector round-trips through safetensors; I32 positions load; bad files are named', async () => {
    const p = SparseProjector.random(11, 6, 3, new Rng(3));
    const dir = tempDir();
    const path = join(dir, 'p.safetensors');
    await writeSafetensors(path, sparseProjectorTensors('proj', p));
    let file = await SafetensorsFile.open(path);
    const q = await readSparseProjector(file, 'proj');
    await expect(readSparseProjector(file, 'other')).rejects.toThrow(/missing tensor 'other.positions'/);
    await file.close();
    expect([q.rows, q.d, q.r]).toEqual([11, 6, 3]);
    expect(q.positions).toEqual(p.positions);
    expect(q.values).toEqual(p.values);

    const signed = sparseProjectorTensors('proj', p).map((t) =>
      t.name === 'proj.positions' ? { ...t, dtype: 'I32' as const, data: Int32Array.from(p.positions) } : t,
    );
    await writeSafetensors(path, signed);
    file = await SafetensorsFile.open(path);
    expect((await readSparseProjector(file, 'proj')).positions).toEqual(p.positions);
    await file.close();

    const repeated = p.clone();
    repeated.positions[1] = repeated.positions[0]!;
    await writeSafetensors(path, sparseProjectorTensors('proj', repeated));
    file = await SafetensorsFile.open(path);
    await expect(readSparseProjector(file, 'proj')).rejects.toThrow(/row 0 repeats position/);
    await file.close();
  });

  it('zeroNonFiniteOnGpu replaces NaN and +-Inf by 0 and keeps everything else', async () => {
    const x = Float32Array.of(
      1,
      Number.NaN,
      -2.5,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      1e-30,
      -0,
      3e38,
    );
    const t = gpu.upload('x', 'f32', [x.length], x);
    zeroNonFiniteOnGpu(gpu, t);
    expect([...((await gpu.read(t)) as Float32Array)]).toEqual([
      1,
      0,
      -2.5,
      0,
      0,
      Math.fround(1e-30),
      -0,
      Math.fround(3e38),
    ]);
    t.release();
  });
});
