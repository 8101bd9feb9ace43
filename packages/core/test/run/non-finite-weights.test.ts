// Weights that are NaN or infinite when a run starts (a checkpoint saved from a diverged run by an older
// version, a damaged model) are refused, naming the tensors, before any step could blame the learning
// rate for them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  DEMO_MODEL_CONFIG,
  ModelWeights,
  Rng,
  Trainer,
  runTraining,
  saveCheckpoint,
  type TrainRunOptions,
} from '../../src/index.js';

let gpu: GpuRuntime;
let dir: string;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
  dir = mkdtempSync(join(tmpdir(), 'non-finite-'));
});
afterAll(() => {
  gpu?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const options = (resume: string): TrainRunOptions => ({
  model: 'demo',
  steps: 2,
  batch: 2,
  seqLen: 64,
  dtype: 'f32',
  evalEvery: 100,
  evalBatches: 1,
  resume,
  trainer: { mode: 'native' },
});

describe('loaded weights', () => {
  it('a checkpoint holding NaN and infinite weights is refused, naming the tensors', async () => {
    const weights = ModelWeights.random(gpu, DEMO_MODEL_CONFIG, 'f32', new Rng(3));
    const trainer = await Trainer.create(gpu, weights, { mode: 'native', totalSteps: 2 });
    const name = 'model.layers.1.mlp.up_proj.weight';
    const values = (await gpu.read(weights.get(name))) as Float32Array;
    // 5 NaN and 2 infinite values in one tensor, 1 NaN in another
    for (const i of [0, 7, 100, 101, 999]) values[i] = NaN;
    values[13] = Infinity;
    values[14] = -Infinity;
    gpu.write(weights.get(name), values);
    const norm = (await gpu.read(weights.get('model.norm.weight'))) as Float32Array;
    norm[3] = NaN;
    gpu.write(weights.get('model.norm.weight'), norm);
    await saveCheckpoint(join(dir, 'diverged'), { trainer });
    await trainer.destroy();
    weights.release();
    await expect(runTraining(gpu, options(join(dir, 'diverged')))).rejects.toThrow(
      new RegExp(
        `^${join(dir, 'diverged')}: 8 loaded values are not finite \\(${name.replaceAll('.', '\\.')} 7, ` +
          'model\\.norm\\.weight 1\\): the model was saved from a diverged run or is damaged',
      ),
    );
  });
});
