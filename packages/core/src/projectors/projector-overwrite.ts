// Replace a projector on the GPU in place (positions, values and the column index), so every holder of
// its tensors (the trainer's compress and apply) sees the new projector without re-fetching anything.
import { buildColumnIndex, type GpuRuntime, type SparseProjectorTensors } from '@lsp-offload/gpu-dawn';
import type { SparseProjector } from './sparse-projector.js';

export function overwriteProjectorTensors(
  gpu: GpuRuntime,
  target: SparseProjectorTensors,
  p: SparseProjector,
): void {
  if (target.rows !== p.rows || target.d !== p.d || target.r !== p.r)
    throw new Error(
      `cannot overwrite a ${target.rows} x ${target.d} (r=${target.r}) projector with ${p.rows} x ${p.d} (r=${p.r})`,
    );
  const { colPtr, colEntry } = buildColumnIndex(p.positions, p.rows, p.r, p.d);
  const colValues = Float32Array.from(colEntry, (e) => p.values[e]!);
  // queue writes run at once on the queue timeline: submit first so work recorded against the old
  // projector runs before they land
  gpu.submit();
  gpu.write(target.positions, p.positions);
  gpu.write(target.values, p.values);
  gpu.write(target.colPtr, colPtr);
  gpu.write(target.colEntry, colEntry);
  gpu.write(target.colValues, colValues);
}
