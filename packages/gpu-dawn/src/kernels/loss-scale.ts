// Dynamic loss scaling with torch.cuda.amp.GradScaler's behaviour, kept on the GPU: the scale multiplies
// the loss gradient (crossEntropyBackward's gradScaleBy), AdamW divides it out (its unscaleBy), and
// updateLossScale applies GradScaler's rule from a non-finite count reduced on the GPU (nonFiniteCount
// with accumulate): halve and count a skipped step on overflow, double after growthInterval clean steps.
// No host read is needed in the step; read the state whenever convenient (metrics).
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { lossScaleUpdateWgsl } from './loss-scale.wgsl.js';
import { checkTensor } from './rows.js';

export interface LossScaleOptions {
  /** GradScaler's init_scale (default 2^16). */
  initScale?: number;
  /** Default 2. */
  growthFactor?: number;
  /** Default 0.5. */
  backoffFactor?: number;
  /** Clean steps before the scale grows (default 2000). */
  growthInterval?: number;
}

export interface LossScaleState {
  /** f32 [1]: the current loss scale. */
  scale: Tensor;
  /** u32 [2]: clean steps since the last change (GradScaler's growth tracker), skipped steps in total. */
  counters: Tensor;
}

/** An element of a GPU tensor (a statistic written by reduce, a scale). */
export interface GpuScalar {
  tensor: Tensor;
  /** Default 0. */
  index?: number;
}

/** Check a GpuScalar and return its index. */
export function scalarIndex(op: string, name: string, s: GpuScalar, dtype: 'f32' | 'u32'): number {
  checkTensor(op, name, s.tensor, [dtype]);
  const index = s.index ?? 0;
  if (!Number.isInteger(index) || index < 0 || index >= s.tensor.numel)
    throw new Error(`${op}: ${name} index ${index} outside '${s.tensor}'`);
  return index;
}

function resolved(options: LossScaleOptions): Required<LossScaleOptions> {
  const o = { initScale: 2 ** 16, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, ...options };
  if (!(o.initScale > 0 && Number.isFinite(o.initScale)))
    throw new Error(`loss scale: initScale must be finite and > 0, got ${o.initScale}`);
  if (!(o.growthFactor > 1)) throw new Error(`loss scale: growthFactor must be > 1, got ${o.growthFactor}`);
  if (!(o.backoffFactor > 0 && o.backoffFactor < 1))
    throw new Error(`loss scale: backoffFactor must lie in (0, 1), got ${o.backoffFactor}`);
  if (!Number.isInteger(o.growthInterval) || o.growthInterval < 1)
    throw new Error(`loss scale: growthInterval must be a positive integer, got ${o.growthInterval}`);
  return o;
}

/** The scale (initScale) and zeroed counters, as 'optimizer' memory. */
export function createLossScaleState(gpu: GpuRuntime, options: LossScaleOptions = {}): LossScaleState {
  const { initScale } = resolved(options);
  const scale = gpu.upload('lossScale.scale', 'f32', [1], [initScale], 'optimizer');
  const counters = gpu.upload('lossScale.counters', 'u32', [2], [0, 0], 'optimizer');
  return { scale, counters };
}

/**
 * Record GradScaler's update from found = count[index] != 0: found -> scale *= backoffFactor, tracker 0,
 * skipped + 1; else tracker + 1, and at growthInterval scale *= growthFactor (only if that is finite) and
 * tracker 0. `clearCount` (default true) zeroes count[index] for the next step's running count.
 */
export function updateLossScale(
  gpu: GpuRuntime,
  state: LossScaleState,
  found: GpuScalar,
  options: LossScaleOptions & { clearCount?: boolean } = {},
): void {
  const op = 'updateLossScale';
  const o = resolved(options);
  const countIndex = scalarIndex(op, 'count', found, 'u32');
  checkTensor(op, 'scale', state.scale, ['f32'], [1]);
  checkTensor(op, 'counters', state.counters, ['u32'], [2]);
  gpu.dispatch({
    label: op,
    pipeline: gpu.pipeline('lossScale.update', () => lossScaleUpdateWgsl),
    bindings: [found.tensor, state.scale, state.counters],
    params: new Params()
      .f32(o.growthFactor)
      .f32(o.backoffFactor)
      .u32(o.growthInterval)
      .u32(countIndex)
      .u32(options.clearCount === false ? 0 : 1),
    workgroups: [1],
  });
}

/** Float64 reference of one updateLossScale (f32 rounding of the scale as on the GPU). */
export function lossScaleUpdateReference(
  state: { scale: number; tracker: number; skipped: number },
  foundNonFinite: boolean,
  options: LossScaleOptions = {},
): { scale: number; tracker: number; skipped: number } {
  const o = resolved(options);
  if (foundNonFinite)
    return { scale: Math.fround(state.scale * o.backoffFactor), tracker: 0, skipped: state.skipped + 1 };
  const clean = state.tracker + 1;
  if (clean < o.growthInterval) return { ...state, tracker: clean };
  const grown = Math.fround(state.scale * Math.fround(o.growthFactor));
  return { scale: Number.isFinite(grown) ? grown : state.scale, tracker: 0, skipped: state.skipped };
}
