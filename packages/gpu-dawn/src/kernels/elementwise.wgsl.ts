// WGSL generator for element-wise kernels over f32 and f16 storage, and the activation math they share.
//
// One invocation owns one PAIR of elements (2k, 2k+1): f16 tensors are stored two per u32 word, and
// WGSL has no 16-bit stores without shader-f16, so the pair's owner writes the whole word and no two
// invocations ever touch the same word. Inputs are loaded as f32, the body computes in f32, f16 outputs
// are rounded to nearest even (bit-identical to dtype.ts). An input whose tensor is also an output
// (in place, e.g. x += y) is read through the output's read_write binding, since WebGPU forbids binding
// one buffer range as read-only and writable storage in the same dispatch.
import { F16_BITS_WGSL } from './cast.wgsl.js';

export const ELEMENTWISE_WORKGROUP_SIZE = 256;

export type FloatDType = 'f32' | 'f16';

export interface ElementwiseInputSpec {
  name: string;
  /** Indexed by `i % cols` (a row vector broadcast over the rows of a [rows, cols] tensor). */
  broadcastRow?: boolean;
}

export interface ElementwiseSpec {
  /** Operation name: part of the pipeline cache key and of dispatch labels. */
  op: string;
  /** Bound in order; the body sees each as an f32 `let` of the same name. */
  inputs: readonly ElementwiseInputSpec[];
  /** The body assigns `o.<name>` (f32) for each. */
  outputs: readonly string[];
  /** Scalar kernel parameters, readable in the body and prelude as `p.<name>`. */
  uniforms?: readonly { name: string; type: 'f32' | 'u32' }[];
  /** Small read-only storage arrays (e.g. a global norm computed on the GPU), bound as `<name>`. */
  extraReads?: readonly { name: string; type: 'f32' | 'u32' }[];
  /** Extra WGSL at module scope (helper functions, private variables the prelude sets). */
  helpers?: string;
  /** Statements run once per invocation before its elements (may `return` to skip them). */
  prelude?: string;
  /** Statements computing one element; `i` is the element index. */
  body: string;
}

export interface ElementwiseVariant {
  inputDtypes: Readonly<Record<string, FloatDType>>;
  outputDtypes: Readonly<Record<string, FloatDType>>;
  /** Input name -> output name whose binding holds that input (in place). */
  aliases: Readonly<Record<string, string>>;
}

/** Activation math in f32, written for stability at large |x| (no inf/inf, no cancellation near 0). */
export const ACTIVATIONS_WGSL = /* wgsl */ `
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn silu(x: f32) -> f32 { return x * sigmoid(x); }
fn siluGrad(x: f32) -> f32 {
  let s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}
const GELU_K: f32 = 0.7978845608028654; // sqrt(2 / pi)
const GELU_C: f32 = 0.044715;
// gelu_new: 0.5 x (1 + tanh(a)), a = k (x + c x^3); 0.5 (1 + tanh(a)) = sigmoid(2a), which avoids the
// cancellation of 1 + tanh(a) for negative x and tanh's inf/inf on some drivers.
fn gelu(x: f32) -> f32 { return x * sigmoid(2.0 * GELU_K * (x + GELU_C * x * x * x)); }
fn geluGrad(x: f32) -> f32 {
  let s = sigmoid(2.0 * GELU_K * (x + GELU_C * x * x * x));
  let sd = s * (1.0 - s);
  // d/dx [x s(2a)] = s + x s (1 - s) 2 a'; the second term is 0 where s saturates (a' may be inf there)
  let tail = select(x * sd * 2.0 * GELU_K * (1.0 + 3.0 * GELU_C * x * x), 0.0, sd == 0.0);
  return s + tail;
}
`;

export function elementwiseWgsl(spec: ElementwiseSpec, variant: ElementwiseVariant): string {
  const decl: string[] = [];
  let binding = 0;
  const storageType = (dtype: FloatDType): string => (dtype === 'f16' ? 'u32' : 'f32');
  for (const input of spec.inputs) {
    if (variant.aliases[input.name] !== undefined) continue;
    const dtype = variant.inputDtypes[input.name]!;
    decl.push(
      `@group(0) @binding(${binding++}) var<storage, read> in_${input.name}: array<${storageType(dtype)}>;`,
    );
  }
  for (const output of spec.outputs) {
    const dtype = variant.outputDtypes[output]!;
    decl.push(
      `@group(0) @binding(${binding++}) var<storage, read_write> out_${output}: array<${storageType(dtype)}>;`,
    );
  }
  for (const extra of spec.extraReads ?? []) {
    decl.push(`@group(0) @binding(${binding++}) var<storage, read> ${extra.name}: array<${extra.type}>;`);
  }
  decl.push(`@group(0) @binding(${binding}) var<uniform> p: Params;`);

  const uniformFields = (spec.uniforms ?? []).map((u) => `  ${u.name}: ${u.type},`).join('\n');

  const loaders = spec.inputs.map((input) => {
    const alias = variant.aliases[input.name];
    const array = alias !== undefined ? `out_${alias}` : `in_${input.name}`;
    const dtype = alias !== undefined ? variant.outputDtypes[alias]! : variant.inputDtypes[input.name]!;
    return dtype === 'f16'
      ? `fn ld_${input.name}(i: u32) -> f32 { return f16BitsToF32((${array}[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }`
      : `fn ld_${input.name}(i: u32) -> f32 { return ${array}[i]; }`;
  });

  const storers = spec.outputs.map((output) =>
    variant.outputDtypes[output] === 'f16'
      ? /* wgsl */ `fn st_${output}(q: u32, v0: f32, v1: f32, has1: bool) {
  // the high half of a tensor's last word is padding: keep whatever is there
  let hi = select(out_${output}[q] >> 16u, f32ToF16Bits(v1), has1);
  out_${output}[q] = f32ToF16Bits(v0) | (hi << 16u);
}`
      : /* wgsl */ `fn st_${output}(q: u32, v0: f32, v1: f32, has1: bool) {
  out_${output}[2u * q] = v0;
  if (has1) { out_${output}[2u * q + 1u] = v1; }
}`,
  );

  const loads = spec.inputs
    .map((input) => `  let ${input.name} = ld_${input.name}(${input.broadcastRow ? 'i % p.cols' : 'i'});`)
    .join('\n');

  return /* wgsl */ `
struct Params {
  n: u32,
  rowStride: u32,
  cols: u32,
${uniformFields}
}
${decl.join('\n')}
${F16_BITS_WGSL}
${ACTIVATIONS_WGSL}
${spec.helpers ?? ''}
${loaders.join('\n')}
${storers.join('\n')}
struct Outs {
${spec.outputs.map((o) => `  ${o}: f32,`).join('\n')}
}
fn elem(i: u32) -> Outs {
${loads}
  var o: Outs;
${spec.body}
  return o;
}
@compute @workgroup_size(${ELEMENTWISE_WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let q = gid.y * p.rowStride + gid.x;
  let i0 = 2u * q;
  if (i0 >= p.n) { return; }
${spec.prelude ?? ''}
  let has1 = i0 + 1u < p.n;
  // both elements are computed before anything is stored: in-place inputs are read from the outputs
  let o0 = elem(i0);
  var o1: Outs;
  if (has1) { o1 = elem(i0 + 1u); }
${spec.outputs.map((o) => `  st_${o}(q, o0.${o}, o1.${o}, has1);`).join('\n')}
}
`;
}
