// One default for the GPU weight dtype across train, plan, bench and generate: f16 where the adapter has
// shader-f16 (half the memory and transfers; fp16 weights with stochastic rounding train as well), f32
// otherwise. `auto` (or no flag) asks for that default.
import type { WeightDtype } from '../model/weights.js';

export type WeightDtypeFlag = WeightDtype | 'auto';

export function defaultWeightDtype(hasShaderF16: boolean): WeightDtype {
  return hasShaderF16 ? 'f16' : 'f32';
}

/** The dtype a --dtype value stands for on an adapter with or without shader-f16; throws on other values. */
export function resolveWeightDtype(flag: string | undefined, hasShaderF16: boolean): WeightDtype {
  if (flag === undefined || flag === 'auto') return defaultWeightDtype(hasShaderF16);
  if (flag !== 'f16' && flag !== 'f32') throw new Error(`--dtype must be auto, f16 or f32, got '${flag}'`);
  if (flag === 'f16' && !hasShaderF16)
    throw new Error("--dtype f16 needs the adapter feature 'shader-f16', which this adapter lacks: use f32");
  return flag;
}
