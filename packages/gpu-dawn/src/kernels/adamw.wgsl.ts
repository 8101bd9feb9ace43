// WGSL pieces of the GPU AdamW (the "native", unlimited-memory reference mode), assembled by the
// element-wise generator: one invocation updates two adjacent elements of param, m, v (and master).
import { COUNTER_RNG_WGSL, STOCHASTIC_ADD_F16_WGSL } from './cast.wgsl.js';
import type { ElementwiseSpec } from './elementwise.wgsl.js';

/**
 * - 'plain': param (f32 or f16) updated directly, f16 rounded to nearest.
 * - 'master': an f32 master copy is updated and the param is its (f16) rounding.
 * - 'stochastic': f16 param without a master copy, the update added with stochastic rounding.
 */
export type AdamWMode = 'plain' | 'master' | 'stochastic';

export const ADAMW_UNIFORMS = [
  { name: 'lrWd', type: 'f32' }, // lr * weight_decay (decoupled decay: w -= lr * wd * w)
  { name: 'stepSize', type: 'f32' }, // lr / (1 - beta1^t)
  { name: 'invSqrtBc2', type: 'f32' }, // 1 / sqrt(1 - beta2^t)
  { name: 'eps', type: 'f32' },
  { name: 'beta1', type: 'f32' },
  { name: 'oneMinusBeta1', type: 'f32' },
  { name: 'beta2', type: 'f32' },
  { name: 'oneMinusBeta2', type: 'f32' },
  { name: 'gradScale', type: 'f32' },
  { name: 'maxNorm', type: 'f32' },
  { name: 'normIndex', type: 'u32' },
  { name: 'flagIndex', type: 'u32' },
  { name: 'seed', type: 'u32' },
  { name: 'step', type: 'u32' },
] as const;

export function adamwSpec(
  mode: AdamWMode,
  clip: boolean,
  skipIfNonFinite: boolean,
  unscale = false,
): ElementwiseSpec {
  const source = mode === 'master' ? 'master' : 'w';
  const apply: Record<AdamWMode, string> = {
    plain: '  o.wNew = w - (p.lrWd * w + update);',
    master: `  let wn = master - (p.lrWd * master + update);
  o.masterNew = wn;
  o.wNew = wn;`,
    stochastic: '  o.wNew = stochasticAddF16(w, -(p.lrWd * w + update), counterUniform(i, p.seed, p.step));',
  };
  const extraReads: { name: string; type: 'f32' | 'u32' }[] = [];
  if (clip) extraReads.push({ name: 'gradNorm', type: 'f32' });
  if (skipIfNonFinite) extraReads.push({ name: 'nonFinite', type: 'u32' });
  if (unscale) extraReads.push({ name: 'lossScale', type: 'f32' });
  // the gradient scale: a host number, divided by a loss scale kept on the GPU with unscale
  const scale = unscale ? '(p.gradScale / lossScale[p.scaleIndex])' : 'p.gradScale';
  return {
    op: `adamw_${mode}${clip ? '_clip' : ''}${skipIfNonFinite ? '_skip' : ''}${unscale ? '_unscale' : ''}`,
    inputs: [{ name: 'g' }, { name: source }, { name: 'm' }, { name: 'v' }],
    outputs: mode === 'master' ? ['wNew', 'mNew', 'vNew', 'masterNew'] : ['wNew', 'mNew', 'vNew'],
    uniforms: unscale ? [...ADAMW_UNIFORMS, { name: 'scaleIndex', type: 'u32' }] : ADAMW_UNIFORMS,
    extraReads,
    helpers:
      'var<private> gradFactor: f32;\n' +
      (mode === 'stochastic' ? COUNTER_RNG_WGSL + STOCHASTIC_ADD_F16_WGSL : ''),
    // the step is skipped on the GPU (no host round trip) when the gradients hold a NaN or inf; clipping
    // scales by min(1, maxNorm / (norm + 1e-6)) of the scaled gradients, as torch's clip_grad_norm_
    prelude: [
      skipIfNonFinite ? '  if (nonFinite[p.flagIndex] != 0u) { return; }' : '',
      clip
        ? `  gradFactor = ${scale} * min(1.0, p.maxNorm / (gradNorm[p.normIndex] * ${scale} + 1e-6));`
        : `  gradFactor = ${scale};`,
    ].join('\n'),
    body: `  let gs = g * gradFactor;
  o.mNew = p.beta1 * m + p.oneMinusBeta1 * gs;
  o.vNew = p.beta2 * v + p.oneMinusBeta2 * gs * gs;
  let update = p.stepSize * o.mNew / (sqrt(o.vNew) * p.invSqrtBc2 + p.eps);
${apply[mode]}`,
  };
}
