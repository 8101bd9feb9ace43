// The one owner of every projector pair of a model (lsp): one pair per projected layer, or one per layer
// type (`sharing`), drawn from one seeded generator, on the GPU with host copies. Compress and apply use
// the pairs (pairsOf); the refitter acts on this set, redrawing from the same generator and replacing
// pairs in place; checkpoints save and restore it.
import { releaseSparseProjector, type GpuRuntime, type SparseProjectorTensors } from '@lsp-offload/gpu-dawn';
import type { LinearWeightSpec, ParameterSpec, TensorReader, TensorToWrite } from '../hf/index.js';
import { Rng, type RngState } from '../util/rng.js';
import { overwriteProjectorTensors } from './projector-overwrite.js';
import {
  groupLayers,
  type ProjectedLayerInfo,
  type ProjectorGroup,
  type ProjectorSharing,
} from './projector-groups.js';
import { ProjectorPair, type PairStorage } from './projector-pair.js';
import { readSparseProjector, sparseProjectorTensors } from './projector-safetensors.js';
import { SparseProjector, type ProjectorInit } from './sparse-projector.js';

export interface ProjectorSetOptions {
  /** Subspace size. */
  d: number;
  /** Non-zeros per row. */
  r: number;
  /** One pair per layer or per layer type. */
  sharing: ProjectorSharing;
  /** Seeds the positions and values of every pair drawn (the initial ones and refits). */
  seed: number;
  init?: ProjectorInit;
  /**
   * Signed permutations with d = rows = cols instead of random pairs (every layer square, one pair per
   * layer; d and r are ignored): compress and apply are then exact.
   */
  exact?: boolean;
}

/** The projected linears of a model: every linear weight in the blocks, in parameter order. */
export function projectedSpecs(specs: readonly ParameterSpec[]): LinearWeightSpec[] {
  return specs.filter((s): s is LinearWeightSpec => s.role === 'linear');
}

export class ProjectorSet {
  readonly groups: readonly ProjectorGroup[];
  private readonly storage = new Map<string, PairStorage>();
  private readonly groupOfLayer = new Map<string, ProjectorGroup>();
  private rng: Rng;

  constructor(
    private readonly gpu: GpuRuntime,
    layers: readonly ProjectedLayerInfo[],
    readonly options: ProjectorSetOptions,
  ) {
    const { d, r, exact } = options;
    if (exact && options.sharing !== 'layer')
      throw new Error('exact projectors are one pair per layer (sharing "layer")');
    if (!exact && (!Number.isInteger(d) || d < 1 || !Number.isInteger(r) || r < 1 || r > d))
      throw new RangeError(`projectors: need integers 1 <= r (--nnz) <= d (--rank), got d = ${d}, r = ${r}`);
    this.rng = new Rng(options.seed, 0x5eed);
    this.groups = groupLayers(layers, options.sharing);
    for (const group of this.groups) {
      const { left, right } = exact ? this.exactPair(group) : this.draw(group);
      this.storage.set(group.key, {
        left,
        right,
        leftGpu: left.toGpu(gpu, `projector.${group.key}.left`),
        rightGpu: right.toGpu(gpu, `projector.${group.key}.right`),
      });
      for (const layer of group.layers) this.groupOfLayer.set(layer.name, group);
    }
  }

  /** The pair of every projected linear among `specs`, by name (compress and apply go through these). */
  pairsOf(specs: readonly ParameterSpec[]): Map<string, ProjectorPair> {
    return new Map(
      projectedSpecs(specs).map((s) => [s.name, new ProjectorPair(this.gpu, s, this.of(s.name))]),
    );
  }

  /** The layer's projectors on the GPU (left rows x d, right cols x d); refits rewrite them in place. */
  projectors(layer: string): { left: SparseProjectorTensors; right: SparseProjectorTensors } {
    const p = this.of(layer);
    return { left: p.leftGpu, right: p.rightGpu };
  }

  /** The layer's projectors on the host (what the GPU tensors hold). */
  hostProjectors(layer: string): { left: SparseProjector; right: SparseProjector } {
    const p = this.of(layer);
    return { left: p.left, right: p.right };
  }

  /** A fresh random pair for a group, from the set's generator (refits start from one). */
  draw(group: ProjectorGroup): { left: SparseProjector; right: SparseProjector } {
    const { d, r, init } = this.options;
    return {
      left: SparseProjector.random(group.rows, d, r, this.rng, init),
      right: SparseProjector.random(group.cols, d, r, this.rng, init),
    };
  }

  /** Replace a group's pair in place (GPU tensors and host copies): every holder sees the new one. */
  replace(groupKey: string, left: SparseProjector, right: SparseProjector): void {
    const p = this.storage.get(groupKey);
    if (!p) throw new Error(`projectors: no group '${groupKey}'`);
    overwriteProjectorTensors(this.gpu, p.leftGpu, left);
    overwriteProjectorTensors(this.gpu, p.rightGpu, right);
    p.left = left;
    p.right = right;
  }

  /** The generator fresh positions are drawn from (saved in checkpoints so refits after a resume match). */
  get rngState(): RngState {
    return this.rng.getState();
  }

  set rngState(s: RngState) {
    this.rng = Rng.fromState(s);
  }

  /**
   * Every pair as safetensors tensors, `<prefix>.<group>.left.*` and `.right.*`, and the generator's state
   * (`<prefix>.rng`, U64 [2]) so refits after a resume draw what they would have drawn.
   */
  checkpointTensors(prefix = 'projectors'): TensorToWrite[] {
    const { state, inc } = this.rng.getState();
    return [
      ...[...this.storage.entries()].flatMap(([key, p]) => [
        ...sparseProjectorTensors(`${prefix}.${key}.left`, p.left),
        ...sparseProjectorTensors(`${prefix}.${key}.right`, p.right),
      ]),
      {
        name: `${prefix}.rng`,
        dtype: 'U64',
        shape: [2],
        data: BigUint64Array.of(BigInt(state), BigInt(inc)),
      },
    ];
  }

  /** Restore every pair (and the generator) from checkpointTensors' output (same layers, sharing, d, r). */
  async restore(reader: TensorReader, prefix = 'projectors'): Promise<void> {
    for (const key of this.storage.keys()) {
      const left = await readSparseProjector(reader, `${prefix}.${key}.left`);
      const right = await readSparseProjector(reader, `${prefix}.${key}.right`);
      this.replace(key, left, right);
    }
    const rng = await reader.read(`${prefix}.rng`);
    if (rng.dtype !== 'U64' || rng.data.length !== 2)
      throw new Error(`projector checkpoint: '${prefix}.rng' must be U64 [2]`);
    const [state, inc] = rng.data as BigUint64Array;
    this.rng = Rng.fromState({ state: state!.toString(), inc: inc!.toString() });
  }

  release(): void {
    this.gpu.submit();
    for (const p of this.storage.values()) for (const t of [p.leftGpu, p.rightGpu]) releaseSparseProjector(t);
    this.storage.clear();
  }

  private of(layer: string): PairStorage {
    const group = this.groupOfLayer.get(layer);
    const p = group && this.storage.get(group.key);
    if (!p) throw new Error(`projectors: '${layer}' is not a projected layer`);
    return p;
  }

  private exactPair(group: ProjectorGroup): { left: SparseProjector; right: SparseProjector } {
    const layer = group.layers[0]!;
    if (group.rows !== group.cols)
      throw new Error(`exact projectors need square layers: ${layer.name} is ${group.rows} x ${group.cols}`);
    return {
      left: SparseProjector.signedPermutation(group.rows, this.rng),
      right: SparseProjector.signedPermutation(group.cols, this.rng),
    };
  }
}
