// The projected linears of a model and their projector pairs on the GPU (lsp mode). Left projector L
// acts on the stored weight's rows, right projector R on its columns: S = L^T G R, W += L D R^T.
import { releaseSparseProjector, type GpuRuntime, type SparseProjectorTensors } from '@lsp-offload/gpu-dawn';
import type { LinearWeightSpec } from '../hf/index.js';
import { SparseProjector } from '../projectors/sparse-projector.js';
import { Rng } from '../util/rng.js';
import type { ModelWeights } from '../model/weights.js';
import type { TrainerOptions } from '../options/trainer-options.js';
import type { ProjectorRefitter } from '../projectors/projector-refitter.js';

export interface ProjectedLayer {
  spec: LinearWeightSpec;
  rows: number;
  cols: number;
  d: number;
  left: SparseProjector;
  right: SparseProjector;
  leftGpu: SparseProjectorTensors;
  rightGpu: SparseProjectorTensors;
}

export function projectedSpecs(weights: ModelWeights): LinearWeightSpec[] {
  return weights.specs.filter((s): s is LinearWeightSpec => s.role === 'linear');
}

/** Draw (or, for exact projectors, build) one projector pair per linear layer and upload them. */
export function createProjectedLayers(
  gpu: GpuRuntime,
  weights: ModelWeights,
  options: TrainerOptions,
): Map<string, ProjectedLayer> {
  const rng = new Rng(options.seed, 0x5eed);
  const layers = new Map<string, ProjectedLayer>();
  for (const spec of projectedSpecs(weights)) {
    const [rows, cols] = spec.shape as [number, number];
    let left: SparseProjector;
    let right: SparseProjector;
    let d: number;
    if (options.exactProjectors) {
      if (rows !== cols) {
        throw new Error(`exact projectors need square layers: ${spec.name} is ${rows} x ${cols}`);
      }
      d = rows;
      left = SparseProjector.signedPermutation(rows, rng);
      right = SparseProjector.signedPermutation(cols, rng);
    } else {
      d = options.rank;
      if (options.nnz > d) throw new Error(`--nnz ${options.nnz} exceeds --rank ${d}`);
      left = SparseProjector.random(rows, d, options.nnz, rng, options.projectorInit);
      right = SparseProjector.random(cols, d, options.nnz, rng, options.projectorInit);
    }
    layers.set(spec.name, {
      spec,
      rows,
      cols,
      d,
      left,
      right,
      leftGpu: left.toGpu(gpu, `${spec.name}.L`),
      rightGpu: right.toGpu(gpu, `${spec.name}.R`),
    });
  }
  return layers;
}

/**
 * The projected layers over a refitter's pairs: the GPU tensors are the refitter's (refits rewrite them in
 * place) and the host copies are looked up each time, since a refit replaces them.
 */
export function refitterProjectedLayers(
  weights: ModelWeights,
  refitter: ProjectorRefitter,
): Map<string, ProjectedLayer> {
  const layers = new Map<string, ProjectedLayer>();
  for (const spec of projectedSpecs(weights)) {
    const [rows, cols] = spec.shape as [number, number];
    const { left, right } = refitter.projectors(spec.name);
    layers.set(spec.name, {
      spec,
      rows,
      cols,
      d: refitter.options.d,
      get left() {
        return refitter.hostProjectors(spec.name).left;
      },
      get right() {
        return refitter.hostProjectors(spec.name).right;
      },
      leftGpu: left,
      rightGpu: right,
    });
  }
  return layers;
}

export function releaseProjectedLayers(layers: Map<string, ProjectedLayer>): void {
  for (const l of layers.values()) {
    releaseSparseProjector(l.leftGpu);
    releaseSparseProjector(l.rightGpu);
  }
  layers.clear();
}
