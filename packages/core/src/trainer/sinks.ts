// Gradient sinks of the offloading modes. Both collect, per update unit (a block, the head: lm_head and
// final norm, or the embeddings), what must travel to the CPU:
//   lsp:  S = (rowsAct L)^T (colsAct R) per projected linear (d x d f32), computed the moment X and dY
//         exist; dense f32 gradients of the non-projected parameters when those are trained.
//   zero: dense gradients of everything, f16 for the linears (ZeRO-Offload's fp16 gradients).
import { cast, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import type { LinearWeightSpec, ParameterSpec } from '../hf/index.js';
import type { GradientSink, GradTarget } from '../model/gradient-sink.js';
import { linearWeightGradient } from '../model/linear.js';
import type { ProjectorPair } from '../projectors/projector-pair.js';

export interface CompressedGradient {
  layer: ProjectorPair;
  s: Tensor;
}

export interface DenseGradient {
  spec: ParameterSpec;
  grad: Tensor;
}

export interface UnitGradients {
  compressed: CompressedGradient[];
  dense: DenseGradient[];
}

/** The embeddings: their gradient is complete only at the very end of the backward. */
export const OUTER_UNIT = -1;
/**
 * lm_head and the final norm: used last in the forward, so their update may arrive while the next forward
 * runs. Numbered above every block (units apply top-down).
 */
export const HEAD_UNIT = 1 << 20;

export function unitOf(spec: ParameterSpec): number {
  if (spec.layer !== null) return spec.layer;
  return spec.role === 'embedding' ? OUTER_UNIT : HEAD_UNIT;
}

abstract class CollectingSink implements GradientSink {
  protected readonly units = new Map<number, UnitGradients>();
  private readonly denseByName = new Map<string, DenseGradient>();
  /**
   * Gradient accumulation: add this micro-batch's gradients into those the earlier ones left (not yet
   * taken) instead of starting new ones.
   */
  accumulate = false;
  /** The micro-batch whose backward is being recorded (gradient accumulation). */
  microBatch = 0;

  constructor(protected readonly gpu: GpuRuntime) {}

  abstract wants(spec: ParameterSpec): boolean;
  abstract linear(spec: LinearWeightSpec, x: Tensor, dy: Tensor): void;

  gradTarget(spec: ParameterSpec): GradTarget {
    return this.target(spec, spec.shape);
  }

  /** The gradient of `spec` as a tensor of `shape` (the parameter's, or fewer rows). */
  protected target(spec: ParameterSpec, shape: readonly number[]): GradTarget {
    let d = this.denseByName.get(spec.name);
    if (!d) {
      d = { spec, grad: this.gpu.tensor(`grad.${spec.name}`, 'f32', shape, 'gradients') };
      this.denseByName.set(spec.name, d);
      this.unit(unitOf(spec)).dense.push(d);
      return { tensor: d.grad, accumulate: false };
    }
    return { tensor: d.grad, accumulate: this.accumulate };
  }

  /** The gradient an earlier micro-batch left for `spec`, when accumulating. */
  protected accumulated(spec: ParameterSpec): Tensor | undefined {
    return this.accumulate ? this.denseByName.get(spec.name)?.grad : undefined;
  }

  /** Hand over (and forget) what a unit produced this step. */
  take(unit: number): UnitGradients {
    const u = this.units.get(unit) ?? { compressed: [], dense: [] };
    this.units.delete(unit);
    for (const d of u.dense) this.denseByName.delete(d.spec.name);
    return u;
  }

  protected unit(unit: number): UnitGradients {
    let u = this.units.get(unit);
    if (!u) {
      u = { compressed: [], dense: [] };
      this.units.set(unit, u);
    }
    return u;
  }

  protected addDense(spec: ParameterSpec, grad: Tensor): void {
    const d = { spec, grad };
    this.denseByName.set(spec.name, d);
    this.unit(unitOf(spec)).dense.push(d);
  }
}

/** The token table's gradient kept as the step's touched rows (lsp, embedding gradient 'rows'). */
export interface CompactRows {
  spec: ParameterSpec;
  /** Rows of the gradient tensor (the most a step of this size can touch). */
  capacity: number;
  /** Per micro-batch: each token's row in the gradient (i32). */
  ids: Tensor[];
}

export class LspSink extends CollectingSink {
  /** Set by the schedule for each step that sends the token table's gradient as rows. */
  compactRows: CompactRows | undefined;

  constructor(
    gpu: GpuRuntime,
    private readonly layers: ReadonlyMap<string, ProjectorPair>,
    private readonly trainNonProjected: boolean,
  ) {
    super(gpu);
  }

  wants(spec: ParameterSpec): boolean {
    return spec.role === 'linear' ? this.layers.has(spec.name) : this.trainNonProjected;
  }

  override gradTarget(spec: ParameterSpec): GradTarget {
    const c = this.compactRows;
    if (!c || c.spec.name !== spec.name) return super.gradTarget(spec);
    const ids = c.ids[this.microBatch];
    if (!ids) throw new Error(`no row ids for micro-batch ${this.microBatch} of '${spec.name}'`);
    // only the touched rows: [capacity, hidden] instead of the vocabulary's rows
    return { ...this.target(spec, [c.capacity, ...spec.shape.slice(1)]), ids };
  }

  linear(spec: LinearWeightSpec, x: Tensor, dy: Tensor): void {
    const layer = this.layers.get(spec.name)!;
    const unit = this.unit(unitOf(spec));
    const earlier = this.accumulate ? unit.compressed.find((c) => c.layer === layer) : undefined;
    const s = layer.compress(x, dy, earlier?.s);
    if (!earlier) unit.compressed.push({ layer, s });
  }
}

export class ZeroSink extends CollectingSink {
  /**
   * Micro-batches of the step in progress (set by the schedule). Above one, the linears' gradients add up
   * in f32 and are rounded to the transfer dtype once, when their unit is taken; with one, the matmul
   * writes the transfer dtype directly (its sums are f32 either way).
   */
  microBatches = 1;

  constructor(
    gpu: GpuRuntime,
    /** Gradients travel in the weights' dtype: fp16 for fp16 weights, as ZeRO-Offload moves them. */
    private readonly gradDtype: 'f16' | 'f32',
  ) {
    super(gpu);
  }

  wants(): boolean {
    return true;
  }

  linear(spec: LinearWeightSpec, x: Tensor, dy: Tensor): void {
    const earlier = this.accumulated(spec);
    const dtype = this.microBatches > 1 ? 'f32' : this.gradDtype;
    const g = earlier ?? this.gpu.tensor(`grad.${spec.name}`, dtype, spec.shape, 'gradients');
    linearWeightGradient(this.gpu, spec, x, dy, g, earlier !== undefined);
    if (!earlier) this.addDense(spec, g);
  }

  override take(unit: number): UnitGradients {
    const u = super.take(unit);
    for (const d of u.dense) {
      if (d.spec.role !== 'linear' || d.grad.dtype === this.gradDtype) continue;
      // accumulated in f32 over the micro-batches: rounded to the transfer dtype once
      const sum = d.grad;
      d.grad = cast(
        this.gpu,
        sum,
        this.gradDtype,
        this.gpu.tensor(sum.label, this.gradDtype, sum.shape, 'gradients'),
      );
      sum.release();
    }
    return u;
  }
}
