// The projector pairs of the projected layers (lsp). Saved from the GPU tensors, which is what compress and
// apply use, so a pair rewritten in place by a refit is saved as it is now (positions and values), and
// restored into the same tensors (and the host copies) without re-drawing anything.
import type { SparseProjectorTensors } from '@lsp-offload/gpu-dawn';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../hf/index.js';
import { overwriteProjectorTensors } from '../projectors/projector-overwrite.js';
import { readSparseProjector, sparseProjectorTensors } from '../projectors/projector-safetensors.js';
import { SparseProjector } from '../projectors/sparse-projector.js';
import type { Trainer } from '../trainer/trainer.js';
import { CheckpointError } from './errors.js';

type Side = 'left' | 'right';

/** The manifest's `rng` entry of the projector refitter's generator (lsp with refits). */
export const REFIT_RNG = 'projectorRefits';

export async function writeProjectors(path: string, trainer: Trainer): Promise<number> {
  const tensors: TensorToWrite[] = [];
  for (const [name, layer] of trainer.projectedLayers) {
    tensors.push(...sparseProjectorTensors(`${name}.left`, await readGpuProjector(trainer, layer.leftGpu)));
    tensors.push(...sparseProjectorTensors(`${name}.right`, await readGpuProjector(trainer, layer.rightGpu)));
  }
  await writeSafetensors(path, tensors);
  return trainer.projectedLayers.size;
}

export async function readProjectors(path: string, trainer: Trainer): Promise<void> {
  const file = await SafetensorsFile.open(path);
  try {
    for (const [name, layer] of trainer.projectedLayers)
      for (const side of ['left', 'right'] as const) {
        const target = side === 'left' ? layer.leftGpu : layer.rightGpu;
        const host = side === 'left' ? layer.left : layer.right;
        const p = await readChecked(path, file, `${name}.${side}`, target, side);
        overwriteProjectorTensors(trainer.gpu, target, p);
        host.positions.set(p.positions);
        host.values.set(p.values);
      }
  } finally {
    await file.close();
  }
}

async function readChecked(
  path: string,
  file: SafetensorsFile,
  prefix: string,
  target: SparseProjectorTensors,
  side: Side,
): Promise<SparseProjector> {
  let p: SparseProjector;
  try {
    p = await readSparseProjector(file, prefix);
  } catch (e) {
    throw new CheckpointError(path, (e as Error).message, { cause: e });
  }
  if (p.rows !== target.rows || p.d !== target.d || p.r !== target.r)
    throw new CheckpointError(
      path,
      `${side} projector '${prefix}' is ${p.rows} x ${p.d} with r = ${p.r}, the trainer's is ${target.rows} x ${target.d} with r = ${target.r} (different --rank or --nnz?)`,
    );
  return p;
}

async function readGpuProjector(trainer: Trainer, t: SparseProjectorTensors): Promise<SparseProjector> {
  const positions = (await trainer.gpu.read(t.positions)) as Uint32Array;
  const values = (await trainer.gpu.read(t.values)) as Float32Array;
  return new SparseProjector(t.rows, t.d, t.r, positions.slice(), values.slice());
}
