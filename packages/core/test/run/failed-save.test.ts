// A disk that fills up during a save: the run stops saying which file could not be written and that the
// previous checkpoint is intact, and it is (it loads and verifies). The full disk is real: the one
// checkpoint file's writes go to /dev/full, which fails every write with ENOSPC.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import { loadCheckpoint, runTraining, type TrainRunOptions } from '../../src/index.js';

/** Paths whose writes go to /dev/full. */
const full: RegExp[] = [];
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const open = ((path: string, ...rest: unknown[]) =>
    full.some((p) => p.test(String(path)))
      ? fs.open('/dev/full', 'w')
      : (fs.open as (...a: unknown[]) => unknown)(path, ...rest)) as typeof fs.open;
  return { ...fs, open, default: { ...fs, open } };
});

let gpu: GpuRuntime;
let dir: string;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
  dir = mkdtempSync(join(tmpdir(), 'failed-save-'));
});
afterAll(() => {
  gpu?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const run = (steps: number, extra: Partial<TrainRunOptions> = {}): TrainRunOptions => ({
  model: 'demo',
  steps,
  batch: 2,
  seqLen: 64,
  dtype: 'f32',
  evalEvery: 100,
  evalBatches: 1,
  checkpointDir: join(dir, 'ckpt'),
  trainer: { mode: 'lsp', rank: 16, threads: 1 },
  ...extra,
});

describe('a save that fails', () => {
  it('names the file it could not write and the previous checkpoint, which stays intact', async () => {
    await runTraining(gpu, run(2));
    full.push(/\.checkpoint-3\.partial-[0-9a-f]+\/\.optimizer\.safetensors\.[\w-]+\.tmp$/);
    const error = await runTraining(gpu, run(3, { resume: join(dir, 'ckpt') })).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    full.length = 0;
    expect(error?.message).toMatch(
      new RegExp(
        `^could not save the checkpoint of step 3 to ${join(dir, 'ckpt', 'checkpoint-3')}: cannot write ` +
          `optimizer\\.safetensors: ENOSPC: no space left on device, write; the previous checkpoint ` +
          `${join(dir, 'ckpt', 'checkpoint-2')} \\(step 2\\) is intact$`,
      ),
    );
    // no half-written checkpoint, no lock left behind; the previous one verifies file by file
    expect(readdirSync(join(dir, 'ckpt'))).toEqual(['checkpoint-2']);
    expect((await loadCheckpoint(join(dir, 'ckpt', 'checkpoint-2'))).manifest.step).toBe(2);
  });
});
