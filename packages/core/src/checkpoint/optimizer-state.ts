// The optimizer state files. lsp and zero: the CPU AdamW's own stateDict() bytes (safetensors with the
// per-tensor step counts and group hyper-parameters in its metadata), written in parts straight from the
// optimizer's shared memory. native: the GPU AdamW's m, v and (f16 weights) fp32 master per parameter.
import { openFileSource, type AdamW as CpuAdamW, type FileSource } from '@lsp-offload/cpu-wasm';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../hf/index.js';
import { stageFile, writeAll } from '../hf/atomic-file.js';
import type { GpuAdamWState } from '../trainer/gpu-optimizer.js';
import type { Trainer } from '../trainer/trainer.js';
import { CheckpointError } from './errors.js';

const SUFFIXES = { m: 'exp_avg', v: 'exp_avg_sq', master: 'master' } as const;

export async function writeCpuOptimizerState(path: string, optimizer: CpuAdamW): Promise<void> {
  const parts = optimizer.stateDictParts();
  const staged = await stageFile(path, async (file) => {
    let position = 0;
    for (const part of parts) {
      await writeAll(file, part, position);
      position += part.byteLength;
    }
  });
  await staged.commit();
}

/**
 * Restores a CPU AdamW from its state file, read straight into the optimizer's shared memory (no copy of
 * the whole state in a buffer, so states over 4 GiB load); the optimizer's own checks name what does not fit.
 */
export function readCpuOptimizerState(path: string, optimizer: CpuAdamW): void {
  let source: FileSource;
  try {
    source = openFileSource(path);
  } catch (e) {
    throw new CheckpointError(path, `cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    optimizer.loadStateDict(source);
  } catch (e) {
    throw new CheckpointError(
      path,
      `the CPU optimizer state does not fit this trainer: ${(e as Error).message}`,
      { cause: e },
    );
  } finally {
    source.close();
  }
}

export async function writeGpuOptimizerState(path: string, trainer: Trainer): Promise<void> {
  // created lazily at the first step: a save before it stores the zero state the first step would create
  trainer.ensureGpuOptimizerState();
  const { gpu, weights } = trainer;
  const tensors: TensorToWrite[] = [];
  for (const spec of weights.specs) {
    const state = stateOf(trainer, spec.name);
    for (const key of ['m', 'v', 'master'] as const) {
      const t = state[key];
      if (t)
        tensors.push({
          name: `${spec.name}.${SUFFIXES[key]}`,
          dtype: 'F32',
          shape: spec.shape,
          data: async () => (await gpu.read(t)) as Float32Array,
        });
    }
  }
  await writeSafetensors(path, tensors);
}

export async function readGpuOptimizerState(path: string, trainer: Trainer): Promise<void> {
  trainer.ensureGpuOptimizerState();
  const { gpu, weights } = trainer;
  const file = await SafetensorsFile.open(path);
  try {
    const expected = new Set<string>();
    for (const spec of weights.specs) {
      const state = stateOf(trainer, spec.name);
      for (const key of ['m', 'v', 'master'] as const) {
        const t = state[key];
        const name = `${spec.name}.${SUFFIXES[key]}`;
        if (!t) continue;
        expected.add(name);
        if (!file.has(name))
          throw new CheckpointError(
            path,
            key === 'master'
              ? `no fp32 master '${name}': the checkpoint was saved with f32 weights, the trainer has ${weights.dtype}`
              : `missing tensor '${name}'`,
          );
        const info = file.info(name);
        if (info.dtype !== 'F32' || info.shape.join() !== spec.shape.join())
          throw new CheckpointError(
            path,
            `tensor '${name}' is ${info.dtype} [${info.shape.join(', ')}], expected F32 [${spec.shape.join(', ')}]`,
          );
        gpu.write(t, (await file.readFloat32(name)).data);
      }
    }
    const extra = [...file.tensors.keys()].filter((n) => !expected.has(n));
    if (extra.length > 0)
      throw new CheckpointError(
        path,
        `tensors this trainer has no state for: ${extra.slice(0, 6).join(', ')}${extra.length > 6 ? ', ...' : ''}`,
      );
  } finally {
    await file.close();
  }
}

function stateOf(trainer: Trainer, name: string): GpuAdamWState {
  const state = trainer.gpuOptimizerState.get(name);
  if (!state) throw new Error(`the trainer has no GPU optimizer state for '${name}'`);
  return state;
}
