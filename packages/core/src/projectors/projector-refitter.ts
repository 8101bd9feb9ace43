// The refit policy the trainer calls every `checkFreq` steps. It acts on the set of projector pairs
// (ProjectorSet, one pair per layer or per layer type): measures each pair's reconstruction error on dense
// gradients of a small held-out batch set, refits only the pairs above alpha (fresh random positions
// from the set's generator, values learned by Adam), replaces them in the set, and moves each refitted
// layer's optimizer moments into the new subspace (m <- A_L m A_R, v <- (A_L o A_L) v (A_R o A_R),
// non-finite -> 0, step count untouched; the authors' release re-zeroed them by mistake).
//
// Usage by the trainer:
//   const set = new ProjectorSet(gpu, projectedLayersOf(specs), { d, r, sharing: 'type', seed });
//   const refitter = new ProjectorRefitter(gpu, set, { alpha: 0.3 });
//   if (refitter.due(step)) report = await refitter.refit(heldOutGradients, moments);
import type { GpuRuntime, Tensor } from '@lsp-offload/gpu-dawn';
import { DEFAULT_REFIT } from '../options/trainer-options.js';
import { MomentTransfer } from './moment-transfer.js';
import { evaluatePair, gradientNorms } from './pair-evaluation.js';
import type { ProjectorGroup } from './projector-groups.js';
import { DEFAULT_LEARNING, learnProjectorPair, type LearningOptions } from './projector-learning.js';
import type { ProjectorSet } from './projector-set.js';
import type { SparseProjector } from './sparse-projector.js';
import { zeroNonFiniteOnGpu } from './zero-non-finite-gpu.js';

export interface RefitterOptions {
  /** A pair whose mean error on the held-out gradients is above this is refitted (0.2-0.3 typical). */
  alpha: number;
  /** Steps between checks (due()); default 100 as in the paper's accuracy runs. */
  checkFreq?: number;
  /** Check before the first step too (due(0)); default DEFAULT_REFIT.atStart. */
  atStart?: boolean;
  /** Adam settings of the learning (the target error is always alpha). */
  learning?: Partial<Omit<LearningOptions, 'targetError'>>;
  /**
   * At most this many layers' gradients are requested at once (whole groups; default: all layers in
   * one request). Bounds the memory the held-out gradients take.
   */
  layersPerRequest?: number;
}

/**
 * Dense f32 gradients [rows, cols] (stored layout) of the named layers on the held-out batches: one
 * tensor per batch, or one accumulated over them. The refitter only reads them, and is done with them
 * when it makes its next request or when refit() resolves.
 */
export type HeldOutGradients = (layers: readonly string[]) => Promise<ReadonlyMap<string, readonly Tensor[]>>;

/** A layer's AdamW moments on the GPU: f32 [d, d] each. */
export interface LayerMoments {
  m: Tensor;
  v: Tensor;
}

/** How the refitter reaches the optimizer state of refitted layers. */
export interface MomentAccess {
  /** The layer's moments, or undefined when it has none yet (nothing to move). */
  get(layer: string): LayerMoments | undefined | Promise<LayerMoments | undefined>;
  /** Called once m and v hold the moved moments (e.g. to copy them back to the CPU optimizer). */
  moved?(layer: string, moments: LayerMoments): void | Promise<void>;
}

export interface LayerRefitReport {
  layer: string;
  group: string;
  /** Mean error over the layer's held-out gradients with the pair before and after the check. */
  errorBefore: number;
  errorAfter: number;
  refitted: boolean;
}

export interface GroupRefitReport {
  group: string;
  /** Mean error over all the group's held-out gradients. */
  errorBefore: number;
  errorAfter: number;
  /** The pair was replaced by a learned one. */
  refitted: boolean;
  /** Learning ran (errorBefore > alpha), whether or not its pair beat the old one. */
  learned: boolean;
  /** Adam steps, the mean error per learning iteration (for plots), and the learning time. */
  iterations: number;
  history: number[];
  learningMs: number;
}

export interface RefitReport {
  layers: LayerRefitReport[];
  groups: GroupRefitReport[];
  /** Wall time of the whole check, and the part spent waiting for held-out gradients. */
  ms: number;
  gradientMs: number;
}

export class ProjectorRefitter {
  constructor(
    private readonly gpu: GpuRuntime,
    /** The pairs it measures and replaces. */
    readonly set: ProjectorSet,
    readonly options: RefitterOptions,
  ) {
    if (!(options.alpha >= 0)) throw new RangeError(`refitter: alpha must be >= 0, got ${options.alpha}`);
  }

  /** Whether a check is due after `step` optimizer steps (every checkFreq steps; at step 0 if atStart). */
  due(step: number): boolean {
    const every = this.options.checkFreq ?? DEFAULT_REFIT.checkFreq;
    if (step === 0) return this.options.atStart ?? DEFAULT_REFIT.atStart;
    return step % every === 0;
  }

  /**
   * Measure every pair on the held-out gradients, refit those above alpha and move their layers'
   * moments. A learned pair replaces the old one only if it reconstructs the same gradients better.
   */
  async refit(gradients: HeldOutGradients, moments?: MomentAccess): Promise<RefitReport> {
    const t0 = performance.now();
    const report: RefitReport = { layers: [], groups: [], ms: 0, gradientMs: 0 };
    for (const batch of this.requestBatches()) {
      const tg = performance.now();
      const byLayer = await gradients(batch.flatMap((g) => g.layers.map((l) => l.name)));
      report.gradientMs += performance.now() - tg;
      for (const group of batch) await this.checkGroup(group, byLayer, moments, report);
    }
    report.ms = performance.now() - t0;
    return report;
  }

  /** Groups in order, cut into requests of at most layersPerRequest layers (a group is never split). */
  private requestBatches(): ProjectorGroup[][] {
    const limit = this.options.layersPerRequest ?? Number.POSITIVE_INFINITY;
    const batches: ProjectorGroup[][] = [];
    let current: ProjectorGroup[] = [];
    let count = 0;
    for (const group of this.set.groups) {
      if (current.length > 0 && count + group.layers.length > limit) {
        batches.push(current);
        current = [];
        count = 0;
      }
      current.push(group);
      count += group.layers.length;
    }
    if (current.length > 0) batches.push(current);
    return batches;
  }

  private async checkGroup(
    group: ProjectorGroup,
    byLayer: ReadonlyMap<string, readonly Tensor[]>,
    moments: MomentAccess | undefined,
    report: RefitReport,
  ): Promise<void> {
    const pair = this.set.hostProjectors(group.layers[0]!.name);
    const { left: leftGpu, right: rightGpu } = this.set.projectors(group.layers[0]!.name);
    const tensors: Tensor[] = [];
    const layerOf: number[] = [];
    group.layers.forEach((layer, i) => {
      const gs = byLayer.get(layer.name);
      if (!gs || gs.length === 0) throw new Error(`refitter: no held-out gradient for '${layer.name}'`);
      for (const g of gs) {
        if (g.dtype !== 'f32' || g.shape.join() !== `${group.rows},${group.cols}`)
          throw new Error(
            `refitter: gradient ${g} of '${layer.name}' must be f32 [${group.rows}, ${group.cols}]`,
          );
        tensors.push(g);
        layerOf.push(i);
      }
    });
    const norms = await gradientNorms(this.gpu, tensors);
    const before = await evaluatePair(this.gpu, tensors, norms, leftGpu, rightGpu, false);
    const groupReport: GroupRefitReport = {
      group: group.key,
      errorBefore: before.meanError,
      errorAfter: before.meanError,
      refitted: false,
      learned: false,
      iterations: 0,
      history: [],
      learningMs: 0,
    };
    let errorsAfter = before.errors;
    if (before.meanError > this.options.alpha) {
      const learned = await learnProjectorPair(this.gpu, tensors, this.set.draw(group), {
        ...DEFAULT_LEARNING,
        ...this.options.learning,
        targetError: this.options.alpha,
      });
      Object.assign(groupReport, {
        learned: true,
        iterations: learned.iterations,
        history: learned.history,
        learningMs: learned.ms,
      });
      if (learned.meanError < before.meanError) {
        await this.moveMoments(group, pair, learned.left, learned.right, moments);
        this.set.replace(group.key, learned.left, learned.right);
        groupReport.refitted = true;
        groupReport.errorAfter = learned.meanError;
        errorsAfter = learned.errors;
      }
    }
    report.groups.push(groupReport);
    group.layers.forEach((layer, i) => {
      const mean = (errors: Float64Array): number => {
        const mine = [...errors].filter((_, j) => layerOf[j] === i);
        return mine.reduce((a, b) => a + b, 0) / mine.length;
      };
      report.layers.push({
        layer: layer.name,
        group: group.key,
        errorBefore: mean(before.errors),
        errorAfter: mean(errorsAfter),
        refitted: groupReport.refitted,
      });
    });
  }

  private async moveMoments(
    group: ProjectorGroup,
    pair: { left: SparseProjector; right: SparseProjector },
    left: SparseProjector,
    right: SparseProjector,
    moments: MomentAccess | undefined,
  ): Promise<void> {
    if (!moments) return;
    const transfer = new MomentTransfer(this.gpu, pair.left, left, pair.right, right);
    try {
      for (const layer of group.layers) {
        const state = await moments.get(layer.name);
        if (!state) continue;
        transfer.apply(state.m, state.v);
        zeroNonFiniteOnGpu(this.gpu, state.m);
        zeroNonFiniteOnGpu(this.gpu, state.v);
        this.gpu.submit();
        await moments.moved?.(layer.name, state);
      }
    } finally {
      this.gpu.submit(); // recorded transfers must be queued before A_L, A_R are given back
      transfer.release();
    }
  }
}
