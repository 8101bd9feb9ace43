// Random initialisation on the GPU: N(mean, std) from a counter-based hash (pcg3d) and Box-Muller, so a
// billion-parameter model is initialised in milliseconds instead of minutes of host-side sampling.
import { COUNTER_RNG_WGSL } from './cast.wgsl.js';

export const RANDOM_WG = 256;

export function fillNormalWgsl(dtype: 'f32' | 'f16'): string {
  const store =
    dtype === 'f32'
      ? `
  if (2u * i < p.n) { out[2u * i] = p.mean + p.sigma * z.x; }
  if (2u * i + 1u < p.n) { out[2u * i + 1u] = p.mean + p.sigma * z.y; }`
      : `
  // two halves per u32 word; one invocation owns one word
  let lo = p.mean + p.sigma * z.x;
  let hi = select(0.0, p.mean + p.sigma * z.y, 2u * i + 1u < p.n);
  if (2u * i < p.n) { out[i] = pack2x16float(vec2<f32>(lo, hi)); }`;
  return /* wgsl */ `
${COUNTER_RNG_WGSL}
struct Params { n: u32, seed: u32, mean: f32, sigma: f32, rowStride: u32, firstPair: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<${dtype === 'f32' ? 'f32' : 'u32'}>;
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(${RANDOM_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.rowStride + gid.x;  // one pair of values of this slice
  if (2u * i >= p.n) { return; }
  // drawn by the pair's place in the whole tensor (a slice of a large one starts at pair firstPair)
  let u1 = max(counterUniform(i + p.firstPair, p.seed, 0u), 1.0 / 16777216.0);
  let u2 = counterUniform(i + p.firstPair, p.seed, 1u);
  let r = sqrt(-2.0 * log(u1));
  let z = vec2<f32>(r * cos(6.283185307 * u2), r * sin(6.283185307 * u2));
${store}
}
`;
}
