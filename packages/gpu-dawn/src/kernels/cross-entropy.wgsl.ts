// Softmax cross-entropy over logits [tokens, vocab] with an ignore index (HF: -100), in three kernels:
//   forward: one workgroup per row; each invocation runs an online (max, sum of exp) over its strided
//            share of the row (one read of the logits, any vocabulary size), the pairs are merged in a
//            fixed tree; writes log-sum-exp (kept for the backward) and the per-token loss.
//   reduce:  one workgroup sums the kept tokens' losses and counts them, in a fixed order (deterministic),
//            so the mean's denominator never leaves the GPU.
//   backward: dlogits = (softmax - onehot(target)) * gradScale / count for kept rows, 0 for ignored rows;
//            optionally in place over the logits (they are dead after the backward; saves tokens x vocab).
//            An f16 dlogits (the lm_head's f16 matmul operand) is written a u32 word (two halves) per
//            invocation over the flat tensor, so rows of odd length need no second writer per word.
import { F16_BITS_WGSL } from './cast.wgsl.js';
import { ROW_WG, WGSL_NAN_FN, loadStored, storedArray, type StoredFloat } from './rows.js';

/** Columns per workgroup of the backward (each invocation writes this / ROW_WG of them). */
export const CE_BACKWARD_COLS_PER_WG = ROW_WG * 4;

// Lowest finite f32 as the running max's start: with -inf, merging two empty partials would compute
// exp(-inf - -inf) = NaN.
const LOWEST = '-3.4028234e38';

export function crossEntropyForwardWgsl(logitsDtype: StoredFloat): string {
  const L = (i: string) => loadStored('logits', logitsDtype, i);
  return /* wgsl */ `
struct Params { rows: u32, vocab: u32, rowsX: u32, ignoreIndex: i32 }
@group(0) @binding(0) var<storage, read> logits: ${storedArray(logitsDtype)};
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<storage, read_write> logSumExp: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
var<workgroup> redMax: array<f32, ${ROW_WG}>;
var<workgroup> redSum: array<f32, ${ROW_WG}>;
${WGSL_NAN_FN}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * p.rowsX + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.vocab;
  var m = ${LOWEST};
  var s = 0.0;
  for (var c = lid; c < p.vocab; c += ${ROW_WG}u) {
    let v = ${L('base + c')};
    if (v > m) {
      s = s * exp(m - v) + 1.0;
      m = v;
    } else {
      s += exp(v - m); // a NaN logit lands here and poisons the sum, as it should
    }
  }
  redMax[lid] = m;
  redSum[lid] = s;
  workgroupBarrier();
  for (var stride = ${ROW_WG / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      let m1 = redMax[lid];
      let m2 = redMax[lid + stride];
      let mm = max(m1, m2);
      redSum[lid] = redSum[lid] * exp(m1 - mm) + redSum[lid + stride] * exp(m2 - mm);
      redMax[lid] = mm;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let lse = redMax[0] + log(redSum[0]);
    logSumExp[row] = lse;
    let t = targets[row];
    var loss = 0.0;
    if (t != p.ignoreIndex) {
      // A target outside the vocabulary (torch raises) makes the loss NaN so it cannot pass unnoticed.
      loss = quietNan();
      if (t >= 0 && u32(t) < p.vocab) { loss = lse - ${L('base + u32(t)')}; }
    }
    losses[row] = loss;
  }
}
`;
}

export const crossEntropyReduceWgsl = /* wgsl */ `
struct Params { rows: u32, ignoreIndex: i32, divideBy: f32, _pad: u32 }
@group(0) @binding(0) var<storage, read> losses: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> meanLoss: array<f32>;
@group(0) @binding(3) var<storage, read_write> keptCount: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;
var<workgroup> redLoss: array<f32, ${ROW_WG}>;
var<workgroup> redCount: array<u32, ${ROW_WG}>;
${WGSL_NAN_FN}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var l = 0.0;
  var n = 0u;
  for (var t = lid; t < p.rows; t += ${ROW_WG}u) {
    if (targets[t] != p.ignoreIndex) {
      l += losses[t];
      n += 1u;
    }
  }
  redLoss[lid] = l;
  redCount[lid] = n;
  workgroupBarrier();
  for (var stride = ${ROW_WG / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      redLoss[lid] += redLoss[lid + stride];
      redCount[lid] += redCount[lid + stride];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let count = redCount[0];
    keptCount[0] = count;
    // divideBy > 0 replaces the count (HF's num_items_in_batch, for gradient accumulation).
    let denom = select(f32(count), p.divideBy, p.divideBy > 0.0);
    // Nothing kept: NaN like torch's mean over no elements (WGSL leaves x / 0 unspecified).
    meanLoss[0] = select(quietNan(), redLoss[0] / denom, denom > 0.0);
  }
}
`;

/**
 * The backward's bindings in order: the logits (or, in place, `data`, read and written), targets, the
 * log-sum-exps, the kept count, the GPU loss scale when `scaledBy`, dlogits unless in place, the params.
 * `element`: how the written gradient is stored (f32, or u32 words of f16 pairs).
 */
function backwardBindings(
  logitsDtype: StoredFloat,
  inPlace: boolean,
  scaledBy: boolean,
  element: 'f32' | 'u32',
): string[] {
  return [
    inPlace
      ? `var<storage, read_write> data: array<${element}>`
      : `var<storage, read> logits: ${storedArray(logitsDtype)}`,
    'var<storage, read> targets: array<i32>',
    'var<storage, read> logSumExp: array<f32>',
    'var<storage, read> keptCount: array<u32>',
    ...(scaledBy ? ['var<storage, read> lossScale: array<f32>'] : []),
    ...(inPlace ? [] : [`var<storage, read_write> dlogits: array<${element}>`]),
    'var<uniform> p: Params',
  ];
}

/**
 * `inPlace`: the gradient overwrites the (f32) logits through one read_write binding `data`. `scaledBy`:
 * gradScale is multiplied by lossScale[scaleIndex], a scale kept on the GPU (dynamic loss scaling).
 */
export function crossEntropyBackwardWgsl(
  logitsDtype: StoredFloat,
  inPlace: boolean,
  scaledBy = false,
): string {
  const L = (i: string) => (inPlace ? `data[${i}]` : loadStored('logits', logitsDtype, i));
  const out = inPlace ? 'data' : 'dlogits';
  const bindings = backwardBindings(logitsDtype, inPlace, scaledBy, 'f32');
  return /* wgsl */ `
struct Params {
  rows: u32, vocab: u32, rowsX: u32, ignoreIndex: i32,
  gradScale: f32, divideBy: f32, ${scaledBy ? 'scaleIndex' : '_pad0'}: u32, _pad1: u32,
}
${bindings.map((b, i) => `@group(0) @binding(${i}) ${b};`).join('\n')}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * p.rowsX + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.vocab;
  let targetId = targets[row];
  let ignored = targetId == p.ignoreIndex;
  let denom = select(f32(keptCount[0]), p.divideBy, p.divideBy > 0.0);
  let scale = ${scaledBy ? 'p.gradScale * lossScale[p.scaleIndex]' : 'p.gradScale'} / denom; // only used when a row is kept, so denom >= 1 then
  let lse = logSumExp[row];
  let c0 = wid.z * ${CE_BACKWARD_COLS_PER_WG}u + lid;
  for (var k = 0u; k < ${CE_BACKWARD_COLS_PER_WG / ROW_WG}u; k++) {
    let c = c0 + k * ${ROW_WG}u;
    if (c < p.vocab) {
      var g = 0.0;
      if (!ignored) {
        let onehot = select(0.0, 1.0, i32(c) == targetId);
        g = (exp(${L('base + c')} - lse) - onehot) * scale;
      }
      ${out}[base + c] = g;
    }
  }
}
`;
}

/**
 * f16 dlogits: invocation w writes word w (elements 2w, 2w + 1, which may lie in two rows), each element
 * the f32 kernel's expression rounded to f16 (overflow to inf). `inPlace`: over f16 logits.
 */
export function crossEntropyBackwardF16Wgsl(
  logitsDtype: StoredFloat,
  inPlace: boolean,
  scaledBy = false,
): string {
  const L = (i: string) => loadStored(inPlace ? 'data' : 'logits', logitsDtype, i);
  const bindings = backwardBindings(logitsDtype, inPlace, scaledBy, 'u32');
  const out = inPlace ? 'data' : 'dlogits';
  return /* wgsl */ `
struct Params {
  total: u32, vocab: u32, rowStride: u32, ignoreIndex: i32,
  gradScale: f32, divideBy: f32, ${scaledBy ? 'scaleIndex' : '_pad0'}: u32, _pad1: u32,
}
${bindings.map((b, i) => `@group(0) @binding(${i}) ${b};`).join('\n')}
${F16_BITS_WGSL}

fn grad(e: u32, scale: f32) -> f32 {
  let row = e / p.vocab;
  let c = e - row * p.vocab;
  let targetId = targets[row];
  if (targetId == p.ignoreIndex) { return 0.0; }
  let onehot = select(0.0, 1.0, i32(c) == targetId);
  return (exp(${L('e')} - logSumExp[row]) - onehot) * scale;
}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let w = gid.y * p.rowStride + gid.x;
  let e0 = 2u * w;
  if (e0 >= p.total) { return; }
  let denom = select(f32(keptCount[0]), p.divideBy, p.divideBy > 0.0);
  let scale = ${scaledBy ? 'p.gradScale * lossScale[p.scaleIndex]' : 'p.gradScale'} / denom; // only used for kept rows, so denom >= 1 then
  let g0 = grad(e0, scale);
  var hi = ${out}[w] >> 16u; // the tensor's padding half: kept
  if (e0 + 1u < p.total) { hi = f32ToF16Bits(grad(e0 + 1u, scale)); }
  ${out}[w] = f32ToF16Bits(g0) | (hi << 16u);
}
`;
}
