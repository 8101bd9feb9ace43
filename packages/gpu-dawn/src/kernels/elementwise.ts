// Element-wise kernels and fused activations with their backward (SiLU, SwiGLU, GELU tanh form), residual
// add, scale, add with alpha and bias add, over f32 or f16 storage (f32 math), each next to its float64
// reference. `runElementwise` is the shared launcher (cast.ts and adamw.ts build on it).
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import {
  ELEMENTWISE_WORKGROUP_SIZE,
  elementwiseWgsl,
  type ElementwiseSpec,
  type FloatDType,
} from './elementwise.wgsl.js';
import { grid1d } from './grid.js';
import { elementBlocks, sliceElements, type ElementBlock } from '../binding-blocks.js';

export type { ElementwiseSpec, FloatDType } from './elementwise.wgsl.js';

export interface ElementwiseArgs {
  /** Dispatch label (defaults to the spec's op). */
  label?: string;
  /** Element count. */
  n: number;
  /** Row length for broadcast inputs. */
  cols?: number;
  inputs: Readonly<Record<string, Tensor>>;
  outputs: Readonly<Record<string, Tensor>>;
  uniforms?: Readonly<Record<string, number>>;
  extraReads?: Readonly<Record<string, Tensor>>;
}

function sameStorage(a: Tensor, b: Tensor): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.bindingSize === b.bindingSize;
}

function overlaps(a: Tensor, b: Tensor): boolean {
  return (
    a.buffer === b.buffer &&
    a.byteOffset < b.byteOffset + b.bindingSize &&
    b.byteOffset < a.byteOffset + a.bindingSize
  );
}

export function floatDType(t: Tensor, what: string): FloatDType {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new Error(`${what}: '${t}' must be f32 or f16`);
  return t.dtype;
}

/**
 * Record an element-wise kernel. Inputs that share storage with an output are read in place; any other
 * overlap between an output and another operand is an error (the result would depend on thread order).
 */
export function runElementwise(gpu: GpuRuntime, spec: ElementwiseSpec, args: ElementwiseArgs): void {
  if (splitOverBindings(gpu, spec, args)) return;
  const label = args.label ?? spec.op;
  const inputDtypes: Record<string, FloatDType> = {};
  const outputDtypes: Record<string, FloatDType> = {};
  const aliases: Record<string, string> = {};
  const outputs = spec.outputs.map((name) => {
    const t = args.outputs[name];
    if (!t) throw new Error(`${label}: output '${name}' missing`);
    outputDtypes[name] = floatDType(t, label);
    return t;
  });
  for (let a = 0; a < outputs.length; a++)
    for (let b = a + 1; b < outputs.length; b++)
      if (overlaps(outputs[a]!, outputs[b]!))
        throw new Error(`${label}: outputs '${outputs[a]}' and '${outputs[b]}' share storage`);
  const boundInputs: Tensor[] = [];
  for (const input of spec.inputs) {
    const t = args.inputs[input.name];
    if (!t) throw new Error(`${label}: input '${input.name}' missing`);
    inputDtypes[input.name] = floatDType(t, label);
    const aliasIndex = outputs.findIndex((o) => overlaps(o, t));
    if (aliasIndex < 0) {
      boundInputs.push(t);
      continue;
    }
    const out = outputs[aliasIndex]!;
    if (!sameStorage(out, t) || out.dtype !== t.dtype || input.broadcastRow) {
      throw new Error(
        `${label}: input '${t}' partly overlaps output '${out}' (only an identical tensor may be updated in place)`,
      );
    }
    aliases[input.name] = spec.outputs[aliasIndex]!;
  }
  const extras = (spec.extraReads ?? []).map((e) => {
    const t = args.extraReads?.[e.name];
    if (!t) throw new Error(`${label}: '${e.name}' missing`);
    if (t.dtype !== e.type) throw new Error(`${label}: '${t}' must be ${e.type}`);
    for (const o of outputs) if (overlaps(o, t)) throw new Error(`${label}: '${t}' overlaps output '${o}'`);
    return t;
  });
  if (args.n === 0) return;

  const variantKey = [
    ...spec.inputs.map((i) => `${i.name}=${aliases[i.name] ? `@${aliases[i.name]}` : inputDtypes[i.name]}`),
    ...spec.outputs.map((o) => `${o}=${outputDtypes[o]}`),
  ].join(',');
  const pipeline = gpu.pipeline(`elementwise:${spec.op}:${variantKey}`, () =>
    elementwiseWgsl(spec, { inputDtypes, outputDtypes, aliases }),
  );
  const pairs = Math.ceil(args.n / 2);
  const grid = grid1d(gpu, pairs, ELEMENTWISE_WORKGROUP_SIZE);
  const params = new Params()
    .u32(args.n)
    .u32(grid.rowStride)
    .u32(args.cols ?? 1);
  for (const u of spec.uniforms ?? []) {
    const v = args.uniforms?.[u.name];
    if (v === undefined) throw new Error(`${label}: parameter '${u.name}' missing`);
    if (u.type === 'f32') params.f32(v);
    else params.u32(v);
  }
  gpu.dispatch({
    label,
    pipeline,
    bindings: [...boundInputs, ...outputs, ...extras],
    params,
    workgroups: grid.workgroups,
  });
}

/**
 * Tensors larger than one binding: the same kernel over element blocks (starting on a broadcast row's
 * boundary), each binding a slice of every per-element operand. Returns false when all fit.
 */
function splitOverBindings(gpu: GpuRuntime, spec: ElementwiseSpec, args: ElementwiseArgs): boolean {
  const broadcast = new Set(spec.inputs.filter((i) => i.broadcastRow).map((i) => i.name));
  const perElement = [
    ...Object.entries(args.inputs).filter(([name]) => !broadcast.has(name)),
    ...Object.entries(args.outputs),
  ].map(([, t]) => t);
  const blocks = elementBlocks(gpu, perElement, args.n, broadcast.size ? (args.cols ?? 1) : 1);
  if (blocks.length === 1) return false;
  const slice = (tensors: Readonly<Record<string, Tensor>>, b: ElementBlock) =>
    Object.fromEntries(
      Object.entries(tensors).map(([name, t]) => [
        name,
        broadcast.has(name) ? t : sliceElements(t, b.start, b.count),
      ]),
    );
  for (const b of blocks)
    runElementwise(gpu, spec, {
      ...args,
      n: b.count,
      inputs: slice(args.inputs, b),
      outputs: slice(args.outputs, b),
    });
  return true;
}

// ---- shape checks and output allocation --------------------------------------------------------------

function sameShape(a: Tensor, b: Tensor): boolean {
  return a.shape.length === b.shape.length && a.shape.every((d, k) => d === b.shape[k]);
}

function expectSameShape(op: string, ref: Tensor, others: readonly Tensor[]): void {
  for (const t of others)
    if (!sameShape(ref, t)) throw new Error(`${op}: '${t}' must have the shape of '${ref}'`);
}

function outputLike(
  gpu: GpuRuntime,
  op: string,
  like: Tensor,
  out: Tensor | undefined,
  name = 'out',
): Tensor {
  if (out) {
    floatDType(out, op);
    expectSameShape(op, like, [out]);
    return out;
  }
  return gpu.tensor(`${op}.${name}`, floatDType(like, op), like.shape, 'activations');
}

// ---- float64 math shared by the references ------------------------------------------------------------

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;
const sigmoid64 = (x: number): number => 1 / (1 + Math.exp(-x));
const silu64 = (x: number): number => x * sigmoid64(x);
const siluGrad64 = (x: number): number => {
  const s = sigmoid64(x);
  return s * (1 + x * (1 - s));
};
const gelu64 = (x: number): number => 0.5 * x * (1 + Math.tanh(GELU_K * (x + GELU_C * x ** 3)));
const geluGrad64 = (x: number): number => {
  const t = Math.tanh(GELU_K * (x + GELU_C * x ** 3));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * x * x);
};

function map64(n: number, f: (i: number) => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

function sameLength(op: string, ...arrays: ArrayLike<number>[]): number {
  const n = arrays[0]!.length;
  for (const a of arrays)
    if (a.length !== n) throw new Error(`${op}: arrays of lengths ${arrays.map((x) => x.length).join(', ')}`);
  return n;
}

// ---- SiLU -----------------------------------------------------------------------------------------------

const SILU: ElementwiseSpec = { op: 'silu', inputs: [{ name: 'x' }], outputs: ['y'], body: 'o.y = silu(x);' };
const SILU_BACKWARD: ElementwiseSpec = {
  op: 'silu_backward',
  inputs: [{ name: 'x' }, { name: 'dy' }],
  outputs: ['dx'],
  body: 'o.dx = dy * siluGrad(x);',
};

/** y = x * sigmoid(x). `out` may be `x` (in place). */
export function silu(gpu: GpuRuntime, x: Tensor, out?: Tensor): Tensor {
  const y = outputLike(gpu, 'silu', x, out);
  runElementwise(gpu, SILU, { n: x.numel, inputs: { x }, outputs: { y } });
  return y;
}

export function siluReference(x: ArrayLike<number>): Float64Array {
  return map64(x.length, (i) => silu64(x[i]!));
}

/** dx = dy * silu'(x). */
export function siluBackward(gpu: GpuRuntime, x: Tensor, dy: Tensor, dxOut?: Tensor): Tensor {
  expectSameShape('siluBackward', x, [dy]);
  const dx = outputLike(gpu, 'siluBackward', x, dxOut, 'dx');
  runElementwise(gpu, SILU_BACKWARD, { n: x.numel, inputs: { x, dy }, outputs: { dx } });
  return dx;
}

export function siluBackwardReference(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return map64(sameLength('siluBackwardReference', x, dy), (i) => dy[i]! * siluGrad64(x[i]!));
}

// ---- SwiGLU: silu(gate) * up ----------------------------------------------------------------------------

const SWIGLU: ElementwiseSpec = {
  op: 'swiglu',
  inputs: [{ name: 'gate' }, { name: 'up' }],
  outputs: ['y'],
  body: 'o.y = silu(gate) * up;',
};
const SWIGLU_BACKWARD: ElementwiseSpec = {
  op: 'swiglu_backward',
  inputs: [{ name: 'gate' }, { name: 'up' }, { name: 'dy' }],
  outputs: ['dGate', 'dUp'],
  body: `  o.dGate = dy * up * siluGrad(gate);
  o.dUp = dy * silu(gate);`,
};

/** y = silu(gate) * up (LLaMA MLP), fused. `out` may be `gate` or `up`. */
export function swiglu(gpu: GpuRuntime, gate: Tensor, up: Tensor, out?: Tensor): Tensor {
  expectSameShape('swiglu', gate, [up]);
  const y = outputLike(gpu, 'swiglu', gate, out);
  runElementwise(gpu, SWIGLU, { n: gate.numel, inputs: { gate, up }, outputs: { y } });
  return y;
}

export function swigluReference(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return map64(sameLength('swigluReference', gate, up), (i) => silu64(gate[i]!) * up[i]!);
}

/**
 * dGate = dy * up * silu'(gate), dUp = dy * silu(gate), in one pass. dGate may be `gate` and dUp may be
 * `up` (in place: the inputs are dead after the backward).
 */
export function swigluBackward(
  gpu: GpuRuntime,
  gate: Tensor,
  up: Tensor,
  dy: Tensor,
  out: { dGate?: Tensor; dUp?: Tensor } = {},
): { dGate: Tensor; dUp: Tensor } {
  expectSameShape('swigluBackward', gate, [up, dy]);
  const dGate = outputLike(gpu, 'swigluBackward', gate, out.dGate, 'dGate');
  const dUp = outputLike(gpu, 'swigluBackward', gate, out.dUp, 'dUp');
  runElementwise(gpu, SWIGLU_BACKWARD, {
    n: gate.numel,
    inputs: { gate, up, dy },
    outputs: { dGate, dUp },
  });
  return { dGate, dUp };
}

export function swigluBackwardReference(
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  dy: ArrayLike<number>,
): { dGate: Float64Array; dUp: Float64Array } {
  const n = sameLength('swigluBackwardReference', gate, up, dy);
  return {
    dGate: map64(n, (i) => dy[i]! * up[i]! * siluGrad64(gate[i]!)),
    dUp: map64(n, (i) => dy[i]! * silu64(gate[i]!)),
  };
}

// ---- GELU, tanh form (HF "gelu_new", GPT-2) ----------------------------------------------------------------

const GELU: ElementwiseSpec = { op: 'gelu', inputs: [{ name: 'x' }], outputs: ['y'], body: 'o.y = gelu(x);' };
const GELU_BACKWARD: ElementwiseSpec = {
  op: 'gelu_backward',
  inputs: [{ name: 'x' }, { name: 'dy' }],
  outputs: ['dx'],
  body: 'o.dx = dy * geluGrad(x);',
};

/** y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). `out` may be `x`. */
export function gelu(gpu: GpuRuntime, x: Tensor, out?: Tensor): Tensor {
  const y = outputLike(gpu, 'gelu', x, out);
  runElementwise(gpu, GELU, { n: x.numel, inputs: { x }, outputs: { y } });
  return y;
}

export function geluReference(x: ArrayLike<number>): Float64Array {
  return map64(x.length, (i) => gelu64(x[i]!));
}

/** dx = dy * gelu'(x). */
export function geluBackward(gpu: GpuRuntime, x: Tensor, dy: Tensor, dxOut?: Tensor): Tensor {
  expectSameShape('geluBackward', x, [dy]);
  const dx = outputLike(gpu, 'geluBackward', x, dxOut, 'dx');
  runElementwise(gpu, GELU_BACKWARD, { n: x.numel, inputs: { x, dy }, outputs: { dx } });
  return dx;
}

export function geluBackwardReference(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return map64(sameLength('geluBackwardReference', x, dy), (i) => dy[i]! * geluGrad64(x[i]!));
}

// ---- add, scale, bias ------------------------------------------------------------------------------------------

const ADD_SCALED: ElementwiseSpec = {
  op: 'add_scaled',
  inputs: [{ name: 'a' }, { name: 'b' }],
  outputs: ['y'],
  uniforms: [{ name: 'alpha', type: 'f32' }],
  body: 'o.y = a + p.alpha * b;',
};
const ADD: ElementwiseSpec = {
  op: 'add',
  inputs: [{ name: 'a' }, { name: 'b' }],
  outputs: ['y'],
  body: 'o.y = a + b;',
};
const SCALE: ElementwiseSpec = {
  op: 'scale',
  inputs: [{ name: 'x' }],
  outputs: ['y'],
  uniforms: [{ name: 'alpha', type: 'f32' }],
  body: 'o.y = p.alpha * x;',
};
const BIAS_ADD: ElementwiseSpec = {
  op: 'bias_add',
  inputs: [{ name: 'x' }, { name: 'bias', broadcastRow: true }],
  outputs: ['y'],
  body: 'o.y = x + bias;',
};

/** y = a + b (residual add). `out` may be `a` or `b`. Mixed f32/f16 operands are allowed. */
export function add(gpu: GpuRuntime, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  expectSameShape('add', a, [b]);
  const y = outputLike(gpu, 'add', a, out);
  runElementwise(gpu, ADD, { n: a.numel, inputs: { a, b }, outputs: { y } });
  return y;
}

/** y = a + alpha * b. `out` may be `a` or `b`. */
export function addScaled(gpu: GpuRuntime, a: Tensor, b: Tensor, alpha: number, out?: Tensor): Tensor {
  expectSameShape('addScaled', a, [b]);
  const y = outputLike(gpu, 'addScaled', a, out);
  runElementwise(gpu, ADD_SCALED, { n: a.numel, inputs: { a, b }, outputs: { y }, uniforms: { alpha } });
  return y;
}

export function addScaledReference(a: ArrayLike<number>, b: ArrayLike<number>, alpha = 1): Float64Array {
  return map64(sameLength('addScaledReference', a, b), (i) => a[i]! + alpha * b[i]!);
}

/** y = alpha * x. `out` may be `x`. */
export function scale(gpu: GpuRuntime, x: Tensor, alpha: number, out?: Tensor): Tensor {
  const y = outputLike(gpu, 'scale', x, out);
  runElementwise(gpu, SCALE, { n: x.numel, inputs: { x }, outputs: { y }, uniforms: { alpha } });
  return y;
}

export function scaleReference(x: ArrayLike<number>, alpha: number): Float64Array {
  return map64(x.length, (i) => alpha * x[i]!);
}

/** y[r, c] = x[r, c] + bias[c] for x of shape [..., cols] and bias of shape [cols]. `out` may be `x`. */
export function biasAdd(gpu: GpuRuntime, x: Tensor, bias: Tensor, out?: Tensor): Tensor {
  const cols = x.shape[x.shape.length - 1];
  if (cols === undefined || bias.numel !== cols)
    throw new Error(`biasAdd: bias '${bias}' must have one element per column of '${x}'`);
  const y = outputLike(gpu, 'biasAdd', x, out);
  runElementwise(gpu, BIAS_ADD, { n: x.numel, cols, inputs: { x, bias }, outputs: { y } });
  return y;
}

export function biasAddReference(x: ArrayLike<number>, bias: ArrayLike<number>): Float64Array {
  if (x.length % bias.length)
    throw new Error(`biasAddReference: ${x.length} elements are not rows of ${bias.length}`);
  return map64(x.length, (i) => x[i]! + bias[i % bias.length]!);
}
