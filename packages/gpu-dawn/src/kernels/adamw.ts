// AdamW on the GPU for the "native" (unlimited memory) reference mode: f32 params, or f16 params with an
// f32 master copy or with stochastic rounding; f32 moments; decoupled weight decay; bias correction from
// the step count; standard eps placement (sqrt(vhat) + eps); a gradient scale and global-norm clipping
// and a non-finite skip read from GPU tensors (no host sync). Next to a float64 reference.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { adamwSpec, type AdamWMode } from './adamw.wgsl.js';
import { cast } from './cast.js';
import { floatDType, runElementwise } from './elementwise.js';
import { scalarIndex, type GpuScalar } from './loss-scale.js';

export type { AdamWMode } from './adamw.wgsl.js';

export interface AdamWHyperparameters {
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Added to sqrt(vhat); default 1e-8. */
  eps?: number;
  /** Decoupled: w -= lr * weightDecay * w. Default 0. */
  weightDecay?: number;
}

export interface AdamWOptions extends AdamWHyperparameters {
  /** 1-based number of this update, for the bias corrections 1 - beta^step. */
  step: number;
  /** Gradients are multiplied by this first (e.g. 1 / loss scale, 1 / accumulation steps). Default 1. */
  gradScale?: number;
  /**
   * Global-norm clipping with the norm already on the GPU (e.g. from globalNorm over all gradients, of
   * the gradients before gradScale): the scaled gradients are multiplied by
   * min(1, maxNorm / (norm * gradScale + 1e-6)).
   */
  clip?: { norm: Tensor; index?: number; maxNorm: number };
  /** Leave everything unchanged when count[index] != 0 (e.g. from nonFiniteCount over the gradients). */
  skipIfNonFinite?: { count: Tensor; index?: number };
  /**
   * Divide gradients (and the clipping norm) by this f32 element as well: a dynamic loss scale kept on
   * the GPU (createLossScaleState). Record updateLossScale after the steps that read it.
   */
  unscaleBy?: GpuScalar;
  /**
   * Stochastic rounding stream for f16 params without a master copy; param k of a list uses seed + k.
   * The step is part of the stream, so repeated steps draw fresh numbers. Default 0.
   */
  seed?: number;
}

export interface AdamWParam {
  /** f32 or f16. */
  param: Tensor;
  /** f32 or f16, same element count. */
  grad: Tensor;
  /** f32 first and second moments. */
  m: Tensor;
  v: Tensor;
  /** Optional f32 master copy: updated in f32, param becomes its rounding. */
  master?: Tensor;
}

/** Moments (zeroed) and, if asked, an f32 master copy initialised from the param, all 'optimizer' memory. */
export function createAdamWState(
  gpu: GpuRuntime,
  param: Tensor,
  options: { master?: boolean } = {},
): { m: Tensor; v: Tensor; master?: Tensor } {
  floatDType(param, 'createAdamWState');
  const m = gpu.tensor(`${param.label}.adam_m`, 'f32', param.shape, 'optimizer');
  const v = gpu.tensor(`${param.label}.adam_v`, 'f32', param.shape, 'optimizer');
  gpu.fill32(m, 0);
  gpu.fill32(v, 0);
  if (!options.master) return { m, v };
  const master = gpu.tensor(`${param.label}.master`, 'f32', param.shape, 'optimizer');
  cast(gpu, param, 'f32', master);
  return { m, v, master };
}

/** The per-step scalars every element uses, computed once in float64. */
function stepScalars(options: AdamWOptions): {
  lrWd: number;
  stepSize: number;
  invSqrtBc2: number;
  eps: number;
  beta1: number;
  beta2: number;
} {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0, step } = options;
  if (!Number.isInteger(step) || step < 1)
    throw new RangeError(`adamw: step must be an integer >= 1, got ${step}`);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    throw new RangeError(`adamw: betas must lie in [0, 1), got ${beta1}, ${beta2}`);
  return {
    lrWd: lr * weightDecay,
    stepSize: lr / (1 - beta1 ** step),
    invSqrtBc2: 1 / Math.sqrt(1 - beta2 ** step),
    eps,
    beta1,
    beta2,
  };
}

function checkState(k: number, t: AdamWParam): AdamWMode {
  const what = `adamw (param ${k} '${t.param.label}')`;
  const pType = floatDType(t.param, what);
  floatDType(t.grad, what);
  const n = t.param.numel;
  if (t.grad.numel !== n)
    throw new Error(`${what}: grad '${t.grad}' must have ${n} elements like '${t.param}'`);
  for (const s of [t.m, t.v, ...(t.master ? [t.master] : [])]) {
    if (s.dtype !== 'f32' || s.numel !== n)
      throw new Error(`${what}: optimizer state '${s}' must be f32 with ${n} elements`);
  }
  if (t.master) return 'master';
  return pType === 'f16' ? 'stochastic' : 'plain';
}

/** Record one AdamW step for each param (one dispatch each). */
export function adamw(
  gpu: GpuRuntime,
  params: AdamWParam | readonly AdamWParam[],
  options: AdamWOptions,
): void {
  const list: readonly AdamWParam[] = Array.isArray(params) ? params : [params as AdamWParam];
  const s = stepScalars(options);
  const clip = options.clip;
  const skip = options.skipIfNonFinite;
  if (clip && clip.norm.dtype !== 'f32') throw new Error(`adamw: clip norm '${clip.norm}' must be f32`);
  if (skip && skip.count.dtype !== 'u32')
    throw new Error(`adamw: non-finite count '${skip.count}' must be u32`);
  const unscale = options.unscaleBy;
  const scaleIndex = unscale ? scalarIndex('adamw', 'unscaleBy', unscale, 'f32') : 0;
  const seed = options.seed ?? 0;
  list.forEach((t, k) => {
    const mode = checkState(k, t);
    const spec = adamwSpec(mode, clip !== undefined, skip !== undefined, unscale !== undefined);
    const inputs: Record<string, Tensor> = { g: t.grad, m: t.m, v: t.v };
    const outputs: Record<string, Tensor> = { wNew: t.param, mNew: t.m, vNew: t.v };
    if (mode === 'master') {
      inputs['master'] = t.master!;
      outputs['masterNew'] = t.master!;
    } else {
      inputs['w'] = t.param;
    }
    const extraReads: Record<string, Tensor> = {};
    if (clip) extraReads['gradNorm'] = clip.norm;
    if (skip) extraReads['nonFinite'] = skip.count;
    if (unscale) extraReads['lossScale'] = unscale.tensor;
    runElementwise(gpu, spec, {
      label: `adamw(${t.param.label})`,
      n: t.param.numel,
      inputs,
      outputs,
      extraReads,
      uniforms: {
        ...s,
        oneMinusBeta1: 1 - s.beta1,
        oneMinusBeta2: 1 - s.beta2,
        gradScale: options.gradScale ?? 1,
        maxNorm: clip?.maxNorm ?? 0,
        normIndex: clip?.index ?? 0,
        flagIndex: skip?.index ?? 0,
        seed: (seed + k) >>> 0,
        step: options.step >>> 0,
        ...(unscale && { scaleIndex }),
      },
    });
  });
}

/** The factor gradients are multiplied by: gradScale, times the clipping factor given the global norm. */
export function adamwGradFactor(gradScale = 1, clip?: { norm: number; maxNorm: number }): number {
  if (!clip) return gradScale;
  return gradScale * Math.min(1, clip.maxNorm / (clip.norm * gradScale + 1e-6));
}

/**
 * Float64 reference: one AdamW step on (param, m, v) in place, gradients multiplied by `gradFactor`
 * (see adamwGradFactor). Same formula as torch.optim.AdamW (decoupled decay, bias correction, eps outside
 * the square root).
 */
export function adamwReference(
  state: { param: Float64Array; m: Float64Array; v: Float64Array },
  grad: ArrayLike<number>,
  options: AdamWHyperparameters & { step: number; gradFactor?: number },
): void {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0, step, gradFactor = 1 } = options;
  const { param, m, v } = state;
  if (grad.length !== param.length || m.length !== param.length || v.length !== param.length)
    throw new Error('adamwReference: param, grad, m and v lengths differ');
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]! * gradFactor;
    m[i] = beta1 * m[i]! + (1 - beta1) * g;
    v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
    const update = ((lr / bc1) * m[i]!) / (Math.sqrt(v[i]! / bc2) + eps);
    param[i] = param[i]! - lr * weightDecay * param[i]! - update;
  }
}
