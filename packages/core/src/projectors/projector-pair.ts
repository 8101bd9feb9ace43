// The method's two GPU steps for one projected linear, through its pair of sparse projectors: the left
// projector L (rows x d) acts on the stored weight's rows, the right R (cols x d) on its columns.
//   compress: S = L^T G R without forming G = the weight gradient: (rowsAct L)^T (colsAct R), d x d f32
//   apply:    W += L D R^T (f16 weights: stochastic rounding), after decoupled weight decay if any
// Layers that share a pair (one per layer type) share its storage; a refit rewrites it in place, so a
// pair never needs re-fetching.
import {
  addTimesProjT,
  applyDelta,
  cast,
  expandRows,
  gatherColumns,
  matmul,
  type GpuRuntime,
  type SparseProjectorTensors,
  type Tensor,
} from '@lsp-offload/gpu-dawn';
import type { LinearWeightSpec } from '../hf/index.js';
import { storedSides } from '../model/linear.js';
import type { SparseProjector } from './sparse-projector.js';

/** A pair's projectors on the host and the GPU; shared by the layers of a group, replaced in place. */
export interface PairStorage {
  left: SparseProjector;
  right: SparseProjector;
  readonly leftGpu: SparseProjectorTensors;
  readonly rightGpu: SparseProjectorTensors;
}

export interface ApplyOptions {
  /** Decoupled weight decay: W -= decay W first (lr x weight decay); absent: none. */
  decay?: number;
  /** D's scale: W += scale L D R^T (a step sent in units of the learning rate: the rate); default 1. */
  scale?: number;
}

/** The dtype of compress's gathered A and B: f16 when both activations are f16, else f32. */
export function compressDtype(x: Tensor, dy: Tensor): 'f16' | 'f32' {
  return x.dtype === 'f16' && dy.dtype === 'f16' ? 'f16' : 'f32';
}

/** One projected linear layer and its projector pair. */
export class ProjectorPair {
  readonly rows: number;
  readonly cols: number;

  constructor(
    private readonly gpu: GpuRuntime,
    readonly spec: LinearWeightSpec,
    private readonly storage: PairStorage,
  ) {
    [this.rows, this.cols] = spec.shape as [number, number];
    if (storage.leftGpu.rows !== this.rows || storage.rightGpu.rows !== this.cols)
      throw new Error(
        `projectors of ${spec.name} are ${storage.leftGpu.rows} and ${storage.rightGpu.rows} rows, the weight is ${this.rows} x ${this.cols}`,
      );
  }

  /** The subspace size. */
  get d(): number {
    return this.storage.leftGpu.d;
  }

  /** Host copies (what the GPU tensors hold; a refit replaces them). */
  get left(): SparseProjector {
    return this.storage.left;
  }

  get right(): SparseProjector {
    return this.storage.right;
  }

  get leftGpu(): SparseProjectorTensors {
    return this.storage.leftGpu;
  }

  get rightGpu(): SparseProjectorTensors {
    return this.storage.rightGpu;
  }

  /**
   * The compressed gradient S (d x d f32, the caller releases it) from the layer's input X [T, in] and
   * output gradient dY [T, out], as the model's backward hands them over. With `into` (an earlier
   * micro-batch's S, gradient accumulation) this one's S is added to it and `into` is returned.
   */
  compress(x: Tensor, dy: Tensor, into?: Tensor): Tensor {
    const { gpu, spec, d } = this;
    const { rowsAct, colsAct } = storedSides(spec, x, dy);
    const tokens = x.numel / spec.inFeatures;
    // f16 activations (mixed precision; dY carries the loss scale) give f16 A and B, so S = B^T A runs on
    // tensor cores; S accumulates and stays f32
    const dtype = compressDtype(x, dy);
    // A and B are given back right after S is recorded: reusing their buffers later is ordered on the GPU
    const a = gpu.tensor(`A.${spec.name}`, dtype, [tokens, d], 'workspace');
    const b = gpu.tensor(`B.${spec.name}`, dtype, [tokens, d], 'workspace');
    gatherColumns(gpu, rowsAct.view([tokens, this.rows]), this.leftGpu, a);
    gatherColumns(gpu, colsAct.view([tokens, this.cols]), this.rightGpu, b);
    const s = into ?? gpu.tensor(`S.${spec.name}`, 'f32', [d, d], 'gradients');
    matmul(gpu, a, b, s, { transA: true, accumulate: into !== undefined, label: `${spec.name} compress` });
    a.release();
    b.release();
    return s;
  }

  /**
   * Record W += scale L D R^T for the step D (d x d, f32 or f16; the caller releases it). The f16 rounding is
   * seeded by `step` (the step that made D) and the layer, so applying it earlier or later gives the same
   * weights.
   */
  apply(w: Tensor, dStep: Tensor, step: number, options: ApplyOptions = {}): void {
    const { gpu, spec } = this;
    const seed = (step * 7919 + spec.layer * 104729 + this.rows) >>> 0;
    // temporaries go back to the allocator as soon as their last use is recorded (the GPU orders any
    // reuse), so applying many deferred updates in a row never holds more than one layer's worth
    if (options.decay !== undefined) {
      const copy = gpu.tensor(`wd.${spec.name}`, 'f32', w.shape, 'workspace');
      cast(gpu, w, 'f32', copy);
      // (^ gives a signed 32-bit integer: back to unsigned, as the kernel's seed must be)
      applyDelta(gpu, w, copy, { alpha: -options.decay, seed: (seed ^ 0x9e3779b9) >>> 0, step });
      copy.release();
    }
    const d32 =
      dStep.dtype === 'f32' ? dStep : gpu.tensor(`D32.${spec.name}`, 'f32', dStep.shape, 'workspace');
    if (dStep.dtype !== 'f32') cast(gpu, dStep, 'f32', d32);
    const f = gpu.tensor(`F.${spec.name}`, 'f32', [this.rows, this.d], 'workspace');
    expandRows(gpu, d32, this.leftGpu, f);
    addTimesProjT(gpu, w, f, this.rightGpu, options.scale ?? 1, seed);
    f.release();
    if (d32 !== dStep) d32.release();
  }
}
