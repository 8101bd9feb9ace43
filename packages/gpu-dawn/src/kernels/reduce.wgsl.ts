// WGSL for deterministic reductions without atomics or workgroup barriers: a level turns n values into
// q = ceil(n / K) partials, invocation t combining the K values t, t + q, t + 2q, ... in order (adjacent
// invocations read adjacent elements), and levels repeat until one value is left, so a result never
// depends on scheduling. (A workgroup-memory tree was the first version: llvmpipe took ~2.5 s to compile
// each one, as every barrier splits the shader into coroutines.) Also column sums (bias gradients).
// Sources are bound as u32 words: f32 bits or two f16 halves per word.
import { F16_BITS_WGSL } from './cast.wgsl.js';

export const REDUCE_WORKGROUP_SIZE = 256;
/** Values one invocation combines per level: ~6 levels for 10^9 elements, the later ones tiny. */
export const REDUCE_VALUES_PER_THREAD = 32;

/** What the first level reads: a tensor (f32 or f16) or a previous level's partials (f32 or u32). */
export type ReduceSource = 'f32' | 'f16' | 'partial';
/** Per-element map of the first level. */
export type ReduceMap = 'value' | 'square' | 'abs' | 'nonFinite';
export type ReduceCombine = 'sum' | 'max' | 'count';

export interface ReduceKernel {
  source: ReduceSource;
  map: ReduceMap;
  combine: ReduceCombine;
  /** Apply sqrt to the final value (global norm). */
  sqrt: boolean;
  /** Combine the result with what dst holds (a running count, sum or max over several calls). */
  accumulate?: boolean;
}

export function reduceWgsl(k: ReduceKernel): string {
  const acc = k.combine === 'count' ? 'u32' : 'f32';
  let load: string;
  if (k.source === 'partial') {
    load =
      acc === 'u32'
        ? 'fn mapElem(i: u32) -> u32 { return src[i]; }'
        : 'fn mapElem(i: u32) -> f32 { return bitcast<f32>(src[i]); }';
  } else {
    const bits =
      k.source === 'f16'
        ? 'fn bitsAt(i: u32) -> u32 { return (src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu; }'
        : 'fn bitsAt(i: u32) -> u32 { return src[i]; }';
    const value = k.source === 'f16' ? 'f16BitsToF32(bitsAt(i))' : 'bitcast<f32>(bitsAt(i))';
    const expMask = k.source === 'f16' ? '0x7c00u' : '0x7f800000u';
    const mapped: Record<ReduceMap, string> = {
      value: `return ${value};`,
      square: `let v = ${value}; return v * v;`,
      abs: `return abs(${value});`,
      // from the bits, so no float path (denormal flushing, fast-math NaN folding) can hide one
      nonFinite: `return select(0u, 1u, (bitsAt(i) & ${expMask}) == ${expMask});`,
    };
    load = `${bits}\nfn mapElem(i: u32) -> ${acc} { ${mapped[k.map]} }`;
  }
  const combine: Record<ReduceCombine, string> = {
    sum: 'fn combine(a: f32, b: f32) -> f32 { return a + b; }',
    count: 'fn combine(a: u32, b: u32) -> u32 { return a + b; }',
    // NaN wins (as in torch.max); WGSL's max() leaves NaN operands to the implementation
    max: `fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
fn combine(a: f32, b: f32) -> f32 {
  if (isNan(a)) { return a; }
  if (isNan(b)) { return b; }
  return max(a, b);
}`,
  };
  // -inf from a runtime value: a constant inf is a WGSL shader-creation error
  const identity =
    k.combine === 'max' ? 'bitcast<f32>(0xff800000u | (p.n & 0u))' : k.combine === 'count' ? '0u' : '0.0';
  return /* wgsl */ `
struct Params { n: u32, threads: u32, rowStride: u32, dstOffset: u32 }
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<${acc}>;
@group(0) @binding(2) var<uniform> p: Params;
${F16_BITS_WGSL}
${load}
${combine[k.combine]}

@compute @workgroup_size(${REDUCE_WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y * p.rowStride + gid.x;
  if (t >= p.threads) { return; }
  var a = ${identity};
  for (var i = t; i < p.n; i += p.threads) { a = combine(a, mapElem(i)); }
  dst[p.dstOffset + t] = ${k.accumulate ? 'combine(dst[p.dstOffset + t], a)' : k.sqrt ? 'sqrt(a)' : 'a'};
}
`;
}

export const COLUMN_SUM_WORKGROUP_SIZE = 64;

/**
 * out[chunk, c] = sum of x[r, c] over the rows r of one chunk (+ out's old value when accumulating).
 * One invocation owns two adjacent columns (so an f16 output word has one writer) and adds its rows in
 * order: deterministic. With several chunks the partials (f32) are summed by a second launch.
 */
export function columnSumWgsl(source: 'f32' | 'f16', output: 'f32' | 'f16'): string {
  const load =
    source === 'f16'
      ? 'fn ld(i: u32) -> f32 { return f16BitsToF32((src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }'
      : 'fn ld(i: u32) -> f32 { return bitcast<f32>(src[i]); }';
  // f16 outputs only occur in the last launch (one chunk), where element c0 is even: word c0 / 2
  const store =
    output === 'f16'
      ? `  let old = dst[e0 >> 1u];
  var s0 = sum0;
  var s1 = sum1;
  if (p.accumulate != 0u) {
    s0 = s0 + f16BitsToF32(old & 0xffffu);
    s1 = s1 + f16BitsToF32(old >> 16u);
  }
  let hi = select(old >> 16u, f32ToF16Bits(s1), has1);
  dst[e0 >> 1u] = f32ToF16Bits(s0) | (hi << 16u);`
      : `  var s0 = sum0;
  if (p.accumulate != 0u) { s0 = s0 + bitcast<f32>(dst[e0]); }
  dst[e0] = bitcast<u32>(s0);
  if (has1) {
    var s1 = sum1;
    if (p.accumulate != 0u) { s1 = s1 + bitcast<f32>(dst[e0 + 1u]); }
    dst[e0 + 1u] = bitcast<u32>(s1);
  }`;
  return /* wgsl */ `
struct Params { rows: u32, cols: u32, rowsPerChunk: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
${F16_BITS_WGSL}
${load}

@compute @workgroup_size(${COLUMN_SUM_WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c0 = 2u * gid.x;
  if (c0 >= p.cols) { return; }
  let has1 = c0 + 1u < p.cols;
  let chunk = gid.y;
  let r0 = chunk * p.rowsPerChunk;
  let r1 = min(r0 + p.rowsPerChunk, p.rows);
  var sum0 = 0.0;
  var sum1 = 0.0;
  for (var r = r0; r < r1; r++) {
    sum0 = sum0 + ld(r * p.cols + c0);
    if (has1) { sum1 = sum1 + ld(r * p.cols + c0 + 1u); }
  }
  let e0 = chunk * p.cols + c0;
${store}
}
`;
}
