// Test helpers: a scenario with every kind of tensor, driven with seeded gradients, plus snapshots.
import { AdamW, floatToHalf, halfToFloat, type AdamWOptions, type Dtype } from '../src/index.js';
import type { RefHyper } from './reference.js';
import { awayFromZero, makeRng, uniform } from './rng.js';

export interface TensorCase {
  name: string;
  kind: 'param' | 'stepOnly';
  length: number;
  gradDtype: Dtype;
  outDtype: Dtype;
  group: string;
}

/** Odd lengths so every tensor ends in a scalar tail; groups with different hyper-parameters. */
export const CASES: TensorCase[] = [
  { name: 'one', kind: 'param', length: 1, gradDtype: 'f32', outDtype: 'f32', group: 'default' },
  { name: 'w7', kind: 'param', length: 7, gradDtype: 'f32', outDtype: 'f32', group: 'nodecay' },
  { name: 'w1001', kind: 'param', length: 1001, gradDtype: 'f32', outDtype: 'f32', group: 'default' },
  { name: 'h4099', kind: 'param', length: 4099, gradDtype: 'f16', outDtype: 'f32', group: 'default' },
  { name: 's33', kind: 'stepOnly', length: 33, gradDtype: 'f32', outDtype: 'f32', group: 'default' },
  { name: 's2049', kind: 'stepOnly', length: 2049, gradDtype: 'f32', outDtype: 'f16', group: 'nodecay' },
  { name: 'sh515', kind: 'stepOnly', length: 515, gradDtype: 'f16', outDtype: 'f16', group: 'default' },
];

export const BASE_OPTIONS: AdamWOptions = {
  lr: 2e-3,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 0.1,
  groups: { nodecay: { weightDecay: 0, lr: 5e-3, betas: [0.8, 0.99] } },
  // small tensors must still be spread over every thread, or thread counts would not be compared
  minElementsPerThread: 32,
};

export function refHyper(group: string): RefHyper {
  const base = { lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
  return group === 'nodecay' ? { ...base, weightDecay: 0, lr: 5e-3, beta1: 0.8, beta2: 0.99 } : base;
}

export function initialParams(c: TensorCase, seed: number): Float32Array {
  return awayFromZero(makeRng(seed * 1000 + c.length), c.length);
}

export function register(opt: AdamW, cases: readonly TensorCase[], seed: number): void {
  for (const c of cases) {
    if (c.kind === 'param')
      opt.addParam(c.name, initialParams(c, seed), { group: c.group, gradDtype: c.gradDtype });
    else opt.addStepOnly(c.name, c.length, { group: c.group, gradDtype: c.gradDtype, outDtype: c.outDtype });
  }
}

/** Gradient of step `t` as the optimizer sees it (fp16 grads are rounded first). */
export function gradientFor(
  c: TensorCase,
  seed: number,
  t: number,
): { raw: Float32Array | Uint16Array; value: Float64Array } {
  const g = uniform(makeRng(seed * 7919 + t * 104729 + c.length), c.length, 1.5);
  if (c.gradDtype === 'f32') return { raw: g, value: Float64Array.from(g) };
  const h = new Uint16Array(c.length);
  for (let i = 0; i < c.length; i++) h[i] = floatToHalf(g[i]!);
  return { raw: h, value: Float64Array.from(h, halfToFloat) };
}

export function writeGradients(opt: AdamW, cases: readonly TensorCase[], seed: number, t: number): void {
  for (const c of cases) opt.setGrad(c.name, gradientFor(c, seed, t).raw);
}

/**
 * Every byte of each tensor's arrays (params, step output unless `withOut` is false, m, v), each array
 * concatenated over its segments so the memory layout does not matter, for bitwise comparisons.
 */
export function snapshot(opt: AdamW, names: readonly string[], withOut = true): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const name of names) {
    const segs = opt.segments(name);
    const parts: Uint8Array[] = [];
    for (const pick of ['param', 'out', 'expAvg', 'expAvgSq'] as const) {
      if (pick === 'out' && !withOut) continue;
      for (const s of segs) {
        const v = s[pick];
        if (v) parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice());
      }
    }
    const total = parts.reduce((a, p) => a + p.length, 0);
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    out.set(name, bytes);
  }
  return out;
}

export function snapshotsEqual(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>): string[] {
  const diffs: string[] = [];
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || y.length !== x.length || x.some((v, i) => v !== y[i])) diffs.push(name);
  }
  return diffs;
}
