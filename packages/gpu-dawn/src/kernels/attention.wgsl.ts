// WGSL generators for causal flash attention (forward, and the flash-attention-2 style backward).
//
// Layouts: q, o, dO, dq [batch, T, nHeads, headDim]; k, v, dk, dv [batch, T, nKvHeads, headDim];
// lse, delta [batch, nHeads, T] (f32). Query head h reads kv head h / groupSize (grouped-query attention).
//
// Every kernel is specialised at generation time for the head dim, the storage dtype and its tile sizes,
// so the per-thread register tiles are fixed-size arrays indexed by constants (unrolled here in TS) and
// the driver can keep them in registers. Rows of head_dim are held in workgroup memory as vec4<f32>
// (zero padded past headDim) so the inner products run 4 lanes at a time for any headDim. Scores use
// base-2 exponentials: s2 = (q . k) * scale * log2(e), so exp(scale * q.k - m) = exp2(s2 - m2).

/** Tiles of the kernels that walk one block of query rows over key blocks (forward and dQ). */
export interface QueryBlockTiles {
  /** Query rows per workgroup. */
  rowsPerBlock: number;
  /** Keys per inner step (one K/V tile in workgroup memory). */
  keysPerBlock: number;
  /** Threads along rows; each thread owns rowsPerBlock / threadRows rows. */
  threadRows: number;
  /** Threads along keys (and along head_dim in the P.V / dS.K products). */
  threadCols: number;
}

/** Tiles of the dK/dV kernel, which walks one block of keys over query blocks. */
export interface KeyBlockTiles {
  /** Keys per workgroup (rows of dK and dV it owns). */
  keysPerBlock: number;
  /** Query rows per inner step. */
  rowsPerBlock: number;
  /** Threads along keys; each thread owns keysPerBlock / threadKeys keys. */
  threadKeys: number;
  /** Threads along query rows (and along head_dim in the dV / dK products). */
  threadCols: number;
}

export interface AttentionKernelSpec {
  headDim: number;
  /** Storage dtype of q, k, v, o, dO, dq, dk, dv ('f16': f16 storage, f32 math). */
  dtype: 'f32' | 'f16';
}

/** vec4 words per head_dim row. */
export const vec4sPerRow = (headDim: number): number => Math.ceil(headDim / 4);

/**
 * Row stride (in vec4) of workgroup tiles read with the row index varying across neighbouring threads:
 * an odd stride puts 8 consecutive rows in 8 different 4-bank groups (no bank conflicts on vec4 reads).
 */
export const paddedRowStride = (headDim: number): number => vec4sPerRow(headDim) | 1;

/** Workgroup memory the forward kernel needs, in bytes. */
export function forwardSharedBytes(headDim: number, t: QueryBlockTiles): number {
  const d4 = vec4sPerRow(headDim);
  const ks = paddedRowStride(headDim);
  return (
    16 * (t.rowsPerBlock * d4 + t.keysPerBlock * ks) +
    4 * (t.rowsPerBlock * t.keysPerBlock + t.rowsPerBlock * t.threadCols)
  );
}

/** Workgroup memory the dQ kernel needs, in bytes. */
export function dqSharedBytes(headDim: number, t: QueryBlockTiles): number {
  const d4 = vec4sPerRow(headDim);
  const ks = paddedRowStride(headDim);
  return 16 * (2 * t.rowsPerBlock * d4 + t.keysPerBlock * ks) + 4 * t.rowsPerBlock * t.keysPerBlock;
}

/** Workgroup memory the dK/dV kernel needs, in bytes. */
export function dkdvSharedBytes(headDim: number, t: KeyBlockTiles): number {
  const s = paddedRowStride(headDim);
  return (
    16 * 2 * (t.keysPerBlock + t.rowsPerBlock) * s +
    4 * 2 * (t.keysPerBlock * t.rowsPerBlock + t.rowsPerBlock)
  );
}

/** `body(i)` for i in [0, n), joined: the register-tile loops, unrolled so array indices are constants. */
function unroll(n: number, body: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => body(i)).join('\n');
}

/**
 * Storage declarations plus load/store helpers for one head_dim-row tensor. With headDim % 4 == 0 the
 * buffer is bound as vec4 words (16-byte f32 / 8-byte f16 loads); otherwise as scalars with a bounds check
 * per lane, zero past headDim.
 */
function rowTensor(
  spec: AttentionKernelSpec,
  name: string,
  binding: number,
  access: 'read' | 'read_write',
): string {
  const e = spec.dtype;
  const D = spec.headDim;
  const vec = D % 4 === 0;
  const decl = `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${vec ? `vec4<${e}>` : e}>;`;
  const load = vec
    ? `fn load_${name}(base: u32, d4: u32) -> vec4<f32> { return vec4<f32>(${name}[(base >> 2u) + d4]); }`
    : `fn load_${name}(base: u32, d4: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var lane = 0u; lane < 4u; lane++) {
    let d = d4 * 4u + lane;
    if (d < ${D}u) { r[lane] = f32(${name}[base + d]); }
  }
  return r;
}`;
  const store =
    access === 'read'
      ? ''
      : vec
        ? `fn store_${name}(base: u32, d4: u32, x: vec4<f32>) { ${name}[(base >> 2u) + d4] = vec4<${e}>(x); }`
        : `fn store_${name}(base: u32, d4: u32, x: vec4<f32>) {
  for (var lane = 0u; lane < 4u; lane++) {
    let d = d4 * 4u + lane;
    if (d < ${D}u) { ${name}[base + d] = ${e}(x[lane]); }
  }
}`;
  return [decl, load, store].join('\n');
}

export const ATTENTION_PARAMS_WGSL = `struct Params {
  T: u32,
  H: u32,
  HKV: u32,
  G: u32,
  scaleLog2: f32,
  scale: f32,
  nBlocks: u32,
}`;

/** A finite stand-in for -inf: exp2(NEG - m) underflows to 0 while NEG - NEG stays finite (no NaN). */
export const NEG = '-3.0e38';
export const LOG2E = '1.4426950408889634';
export const LN2 = '0.6931471805599453';

function header(spec: AttentionKernelSpec): string {
  return spec.dtype === 'f16' ? 'enable f16;\n' : '';
}

/**
 * Forward: one workgroup per (query block, head, batch), online softmax over the causal key blocks.
 * Writes o and the natural-log logsumexp of each row's scaled scores (lse), which the backward needs.
 */
export function attentionForwardWgsl(spec: AttentionKernelSpec, t: QueryBlockTiles): string {
  const D = spec.headDim;
  const D4 = vec4sPerRow(D);
  const KS = paddedRowStride(D);
  const { rowsPerBlock: BR, keysPerBlock: BC, threadRows: TR, threadCols: TC } = t;
  const RM = BR / TR;
  const CN = BC / TC;
  const DN = Math.ceil(D4 / TC);
  // Only the last head_dim column slot can fall past D4 when TC does not divide it.
  const dGuard = (j: number): string => (D4 % TC !== 0 && j === DN - 1 ? `if (tc + ${TC * j}u < D4) ` : '');
  return `${header(spec)}
${ATTENTION_PARAMS_WGSL}
${rowTensor(spec, 'q', 0, 'read')}
${rowTensor(spec, 'k', 1, 'read')}
${rowTensor(spec, 'v', 2, 'read')}
${rowTensor(spec, 'o', 3, 'read_write')}
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const BR = ${BR}u;
const BC = ${BC}u;
const TR = ${TR}u;
const TC = ${TC}u;
const NT = ${TR * TC}u;
const D = ${D}u;
const D4 = ${D4}u;
const KS = ${KS}u;

var<workgroup> qs: array<vec4<f32>, ${BR * D4}>;
// K for the scores, then V for P.V: one buffer keeps the footprint small enough for head_dim 128.
var<workgroup> kvs: array<vec4<f32>, ${BC * KS}>;
var<workgroup> ps: array<f32, ${BR * BC}>;
var<workgroup> red: array<f32, ${BR * TC}>;

@compute @workgroup_size(${TR * TC})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // Later query blocks see more keys: start them first so the long ones are not the tail.
  let qb = p.nBlocks - 1u - wid.x;
  let h = wid.y;
  let b = wid.z;
  let hk = h / p.G;
  let row0 = qb * BR;
  let tr = lid / TC;
  let tc = lid % TC;
  let rowsEnd = min(row0 + BR, p.T);

  for (var idx = lid; idx < BR * D4; idx += NT) {
    let t = row0 + idx / D4;
    var x = vec4<f32>(0.0);
    if (t < p.T) { x = load_q(((b * p.T + t) * p.H + h) * D, idx % D4) * p.scaleLog2; }
    qs[idx] = x;
  }

  var m: array<f32, ${RM}>;
  var l: array<f32, ${RM}>;
  var acc: array<vec4<f32>, ${RM * DN}>;
${unroll(RM, (i) => `  m[${i}] = ${NEG};\n  l[${i}] = 0.0;`)}
${unroll(RM * DN, (x) => `  acc[${x}] = vec4<f32>(0.0);`)}

  // Causal: the block's last row is rowsEnd - 1, so keys [0, rowsEnd) are all it can see.
  let nKeyBlocks = (rowsEnd + BC - 1u) / BC;
  for (var kb = 0u; kb < nKeyBlocks; kb++) {
    let key0 = kb * BC;
    workgroupBarrier(); // previous block's P.V reads of kvs and ps are done
    for (var idx = lid; idx < BC * D4; idx += NT) {
      let c = idx / D4;
      let t = key0 + c;
      var x = vec4<f32>(0.0);
      if (t < p.T) { x = load_k(((b * p.T + t) * p.HKV + hk) * D, idx % D4); }
      kvs[c * KS + idx % D4] = x;
    }
    workgroupBarrier();

    var s: array<f32, ${RM * CN}>;
${unroll(RM * CN, (x) => `    s[${x}] = 0.0;`)}
    for (var d4 = 0u; d4 < D4; d4++) {
${unroll(RM, (i) => `      let q${i} = qs[(tr + ${TR * i}u) * D4 + d4];`)}
${unroll(CN, (j) => `      let k${j} = kvs[(tc + ${TC * j}u) * KS + d4];`)}
${unroll(RM * CN, (x) => `      s[${x}] += dot(q${Math.floor(x / CN)}, k${x % CN});`)}
    }
${unroll(
  RM,
  (i) => `    {
      let row = row0 + tr + ${TR * i}u;
      var pm = ${NEG};
${unroll(CN, (j) => {
  const x = i * CN + j;
  return `      let col${j} = key0 + tc + ${TC * j}u;
      if (col${j} > row || col${j} >= p.T) { s[${x}] = ${NEG}; }
      pm = max(pm, s[${x}]);`;
})}
      red[(tr + ${TR * i}u) * TC + tc] = pm;
    }`,
)}
    workgroupBarrier();
${unroll(
  RM,
  (i) => `    {
      var mx = m[${i}];
      for (var u = 0u; u < TC; u++) { mx = max(mx, red[(tr + ${TR * i}u) * TC + u]); }
      let alpha = exp2(m[${i}] - mx);
      m[${i}] = mx;
      l[${i}] *= alpha;
${unroll(DN, (j) => `      acc[${i * DN + j}] *= alpha;`)}
${unroll(CN, (j) => {
  const x = i * CN + j;
  return `      let p${j} = exp2(s[${x}] - mx);
      l[${i}] += p${j};
      ps[(tr + ${TR * i}u) * BC + tc + ${TC * j}u] = p${j};`;
})}
    }`,
)}
    // Every thread passed the barrier after its last read of K, so V may overwrite it now.
    for (var idx = lid; idx < BC * D4; idx += NT) {
      let c = idx / D4;
      let t = key0 + c;
      var x = vec4<f32>(0.0);
      if (t < p.T) { x = load_v(((b * p.T + t) * p.HKV + hk) * D, idx % D4); }
      kvs[c * KS + idx % D4] = x;
    }
    workgroupBarrier();
    let cEnd = min(BC, rowsEnd - key0);
    for (var c = 0u; c < cEnd; c++) {
${unroll(RM, (i) => `      let p${i} = ps[(tr + ${TR * i}u) * BC + c];`)}
${unroll(DN, (j) => `      let v${j} = kvs[c * KS + min(tc + ${TC * j}u, D4 - 1u)];`)}
${unroll(RM * DN, (x) => `      acc[${x}] += p${Math.floor(x / DN)} * v${x % DN};`)}
    }
  }

  // Each thread summed exp over its own key columns; add the row's partial sums once at the end.
  // red is free: its last reads happened before the barrier that preceded the final P.V.
${unroll(RM, (i) => `  red[(tr + ${TR * i}u) * TC + tc] = l[${i}];`)}
  workgroupBarrier();
${unroll(
  RM,
  (i) => `  {
    let row = row0 + tr + ${TR * i}u;
    var total = 0.0;
    for (var u = 0u; u < TC; u++) { total += red[(tr + ${TR * i}u) * TC + u]; }
    if (row < p.T) {
      let inv = 1.0 / total;
      let base = ((b * p.T + row) * p.H + h) * D;
${unroll(DN, (j) => `      ${dGuard(j)}{ store_o(base, tc + ${TC * j}u, acc[${i * DN + j}] * inv); }`)}
      if (tc == 0u) { lse[(b * p.H + h) * p.T + row] = (m[${i}] + log2(total)) * ${LN2}; }
    }
  }`,
)}
}
`;
}

/** delta[b, h, t] = sum_d dO * O: the row term of the softmax backward. One thread per row. */
export function attentionDeltaWgsl(spec: AttentionKernelSpec, workgroupSize: number): string {
  const D = spec.headDim;
  const D4 = vec4sPerRow(D);
  return `${header(spec)}
struct Params { T: u32, H: u32, rows: u32, rowStride: u32 }
${rowTensor(spec, 'o', 0, 'read')}
${rowTensor(spec, 'dO', 1, 'read')}
@group(0) @binding(2) var<storage, read_write> delta: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(${workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  // row = (b * T + t) * H + h: the memory order of o's rows.
  let row = gid.y * p.rowStride + gid.x;
  if (row >= p.rows) { return; }
  let base = row * ${D}u;
  var sum = 0.0;
  for (var d4 = 0u; d4 < ${D4}u; d4++) { sum += dot(load_o(base, d4), load_dO(base, d4)); }
  let h = row % p.H;
  let bt = row / p.H;
  let b = bt / p.T;
  let t = bt % p.T;
  delta[(b * p.H + h) * p.T + t] = sum;
}
`;
}

/**
 * dQ: one workgroup per (query block, head, batch) walks the causal key blocks again, recomputing P from
 * the saved lse: dQ = scale * sum_keys P * (dP - delta) K, with dP = dO . V. No atomics: each workgroup owns
 * its rows of dq.
 */
export function attentionDqWgsl(spec: AttentionKernelSpec, t: QueryBlockTiles): string {
  const D = spec.headDim;
  const D4 = vec4sPerRow(D);
  const KS = paddedRowStride(D);
  const { rowsPerBlock: BR, keysPerBlock: BC, threadRows: TR, threadCols: TC } = t;
  const RM = BR / TR;
  const CN = BC / TC;
  const DN = Math.ceil(D4 / TC);
  const dGuard = (j: number): string => (D4 % TC !== 0 && j === DN - 1 ? `if (tc + ${TC * j}u < D4) ` : '');
  return `${header(spec)}
${ATTENTION_PARAMS_WGSL}
${rowTensor(spec, 'q', 0, 'read')}
${rowTensor(spec, 'k', 1, 'read')}
${rowTensor(spec, 'v', 2, 'read')}
${rowTensor(spec, 'dO', 3, 'read')}
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> delta: array<f32>;
${rowTensor(spec, 'dq', 6, 'read_write')}
@group(0) @binding(7) var<uniform> p: Params;

const BR = ${BR}u;
const BC = ${BC}u;
const TR = ${TR}u;
const TC = ${TC}u;
const NT = ${TR * TC}u;
const D = ${D}u;
const D4 = ${D4}u;
const KS = ${KS}u;

var<workgroup> qs: array<vec4<f32>, ${BR * D4}>;
var<workgroup> dos: array<vec4<f32>, ${BR * D4}>;
// V for dP, then K for the scores and dS.K.
var<workgroup> kvs: array<vec4<f32>, ${BC * KS}>;
var<workgroup> dss: array<f32, ${BR * BC}>;

@compute @workgroup_size(${TR * TC})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let qb = p.nBlocks - 1u - wid.x;
  let h = wid.y;
  let b = wid.z;
  let hk = h / p.G;
  let row0 = qb * BR;
  let tr = lid / TC;
  let tc = lid % TC;
  let rowsEnd = min(row0 + BR, p.T);

  for (var idx = lid; idx < BR * D4; idx += NT) {
    let t = row0 + idx / D4;
    var x = vec4<f32>(0.0);
    var g = vec4<f32>(0.0);
    if (t < p.T) {
      let base = ((b * p.T + t) * p.H + h) * D;
      x = load_q(base, idx % D4) * p.scaleLog2;
      g = load_dO(base, idx % D4);
    }
    qs[idx] = x;
    dos[idx] = g;
  }
  var lse2: array<f32, ${RM}>;
  var dl: array<f32, ${RM}>;
${unroll(
  RM,
  (i) => `  {
    let row = row0 + tr + ${TR * i}u;
    lse2[${i}] = 0.0;
    dl[${i}] = 0.0;
    if (row < p.T) {
      lse2[${i}] = lse[(b * p.H + h) * p.T + row] * ${LOG2E};
      dl[${i}] = delta[(b * p.H + h) * p.T + row];
    }
  }`,
)}
  var acc: array<vec4<f32>, ${RM * DN}>;
${unroll(RM * DN, (x) => `  acc[${x}] = vec4<f32>(0.0);`)}

  let nKeyBlocks = (rowsEnd + BC - 1u) / BC;
  for (var kb = 0u; kb < nKeyBlocks; kb++) {
    let key0 = kb * BC;
    workgroupBarrier(); // previous block's dS.K reads of kvs and dss are done
    for (var idx = lid; idx < BC * D4; idx += NT) {
      let c = idx / D4;
      let t = key0 + c;
      var x = vec4<f32>(0.0);
      if (t < p.T) { x = load_v(((b * p.T + t) * p.HKV + hk) * D, idx % D4); }
      kvs[c * KS + idx % D4] = x;
    }
    workgroupBarrier();
    var dp: array<f32, ${RM * CN}>;
${unroll(RM * CN, (x) => `    dp[${x}] = 0.0;`)}
    for (var d4 = 0u; d4 < D4; d4++) {
${unroll(RM, (i) => `      let g${i} = dos[(tr + ${TR * i}u) * D4 + d4];`)}
${unroll(CN, (j) => `      let v${j} = kvs[(tc + ${TC * j}u) * KS + d4];`)}
${unroll(RM * CN, (x) => `      dp[${x}] += dot(g${Math.floor(x / CN)}, v${x % CN});`)}
    }
    workgroupBarrier(); // V reads done
    for (var idx = lid; idx < BC * D4; idx += NT) {
      let c = idx / D4;
      let t = key0 + c;
      var x = vec4<f32>(0.0);
      if (t < p.T) { x = load_k(((b * p.T + t) * p.HKV + hk) * D, idx % D4); }
      kvs[c * KS + idx % D4] = x;
    }
    workgroupBarrier();
    var s: array<f32, ${RM * CN}>;
${unroll(RM * CN, (x) => `    s[${x}] = 0.0;`)}
    for (var d4 = 0u; d4 < D4; d4++) {
${unroll(RM, (i) => `      let q${i} = qs[(tr + ${TR * i}u) * D4 + d4];`)}
${unroll(CN, (j) => `      let k${j} = kvs[(tc + ${TC * j}u) * KS + d4];`)}
${unroll(RM * CN, (x) => `      s[${x}] += dot(q${Math.floor(x / CN)}, k${x % CN});`)}
    }
${unroll(
  RM,
  (i) => `    {
      let row = row0 + tr + ${TR * i}u;
${unroll(CN, (j) => {
  const x = i * CN + j;
  return `      {
        let key = key0 + tc + ${TC * j}u;
        let pr = select(0.0, exp2(s[${x}] - lse2[${i}]), key <= row && key < p.T && row < p.T);
        dss[(tr + ${TR * i}u) * BC + tc + ${TC * j}u] = pr * (dp[${x}] - dl[${i}]);
      }`;
})}
    }`,
)}
    workgroupBarrier();
    let cEnd = min(BC, rowsEnd - key0);
    for (var c = 0u; c < cEnd; c++) {
${unroll(RM, (i) => `      let ds${i} = dss[(tr + ${TR * i}u) * BC + c];`)}
${unroll(DN, (j) => `      let k${j} = kvs[c * KS + min(tc + ${TC * j}u, D4 - 1u)];`)}
${unroll(RM * DN, (x) => `      acc[${x}] += ds${Math.floor(x / DN)} * k${x % DN};`)}
    }
  }

${unroll(
  RM,
  (i) => `  {
    let row = row0 + tr + ${TR * i}u;
    if (row < p.T) {
      let base = ((b * p.T + row) * p.H + h) * D;
${unroll(DN, (j) => `      ${dGuard(j)}{ store_dq(base, tc + ${TC * j}u, acc[${i * DN + j}] * p.scale); }`)}
    }
  }`,
)}
}
`;
}

/**
 * dK and dV: one workgroup per (key block, kv head, batch) holds its K and V tiles and walks every query
 * head of its group and every query block at or after the keys (causal), accumulating in registers:
 * dV += P^T dO and dK += scale * dS^T Q. The sum over the heads sharing a kv head happens in a fixed order
 * inside one workgroup: deterministic, no atomics.
 */
export function attentionDkdvWgsl(spec: AttentionKernelSpec, t: KeyBlockTiles): string {
  const D = spec.headDim;
  const D4 = vec4sPerRow(D);
  const S = paddedRowStride(D);
  const { keysPerBlock: BC, rowsPerBlock: BR, threadKeys: TK, threadCols: TQ } = t;
  const KM = BC / TK;
  const QN = BR / TQ;
  const DN = Math.ceil(D4 / TQ);
  const dGuard = (j: number): string => (D4 % TQ !== 0 && j === DN - 1 ? `if (tq + ${TQ * j}u < D4) ` : '');
  return `${header(spec)}
${ATTENTION_PARAMS_WGSL}
${rowTensor(spec, 'q', 0, 'read')}
${rowTensor(spec, 'k', 1, 'read')}
${rowTensor(spec, 'v', 2, 'read')}
${rowTensor(spec, 'dO', 3, 'read')}
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> delta: array<f32>;
${rowTensor(spec, 'dk', 6, 'read_write')}
${rowTensor(spec, 'dv', 7, 'read_write')}
@group(0) @binding(8) var<uniform> p: Params;

const BC = ${BC}u;
const BR = ${BR}u;
const TK = ${TK}u;
const TQ = ${TQ}u;
const NT = ${TK * TQ}u;
const D = ${D}u;
const D4 = ${D4}u;
const S = ${S}u;

var<workgroup> ks: array<vec4<f32>, ${BC * S}>;
var<workgroup> vs: array<vec4<f32>, ${BC * S}>;
var<workgroup> qs: array<vec4<f32>, ${BR * S}>;
var<workgroup> dos: array<vec4<f32>, ${BR * S}>;
var<workgroup> ps: array<f32, ${BC * BR}>;
var<workgroup> dss: array<f32, ${BC * BR}>;
var<workgroup> lse2s: array<f32, ${BR}>;
var<workgroup> dls: array<f32, ${BR}>;

@compute @workgroup_size(${TK * TQ})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // The first key blocks are seen by the most queries: they run first.
  let kb = wid.x;
  let hk = wid.y;
  let b = wid.z;
  let key0 = kb * BC;
  let tk = lid / TQ;
  let tq = lid % TQ;

  // K is pre-scaled so Q stays unscaled for dK = scale * dS^T Q.
  for (var idx = lid; idx < BC * D4; idx += NT) {
    let c = idx / D4;
    let t = key0 + c;
    var x = vec4<f32>(0.0);
    var y = vec4<f32>(0.0);
    if (t < p.T) {
      let base = ((b * p.T + t) * p.HKV + hk) * D;
      x = load_k(base, idx % D4) * p.scaleLog2;
      y = load_v(base, idx % D4);
    }
    ks[c * S + idx % D4] = x;
    vs[c * S + idx % D4] = y;
  }
  var accK: array<vec4<f32>, ${KM * DN}>;
  var accV: array<vec4<f32>, ${KM * DN}>;
${unroll(KM * DN, (x) => `  accK[${x}] = vec4<f32>(0.0);\n  accV[${x}] = vec4<f32>(0.0);`)}

  // Query rows before key0 see none of these keys.
  let firstQueryBlock = key0 / BR;
  for (var g = 0u; g < p.G; g++) {
    let h = hk * p.G + g;
    for (var qb = firstQueryBlock; qb < p.nBlocks; qb++) {
      let row0 = qb * BR;
      workgroupBarrier(); // previous step's reads of qs, dos, ps, dss are done
      for (var idx = lid; idx < BR * D4; idx += NT) {
        let r = idx / D4;
        let t = row0 + r;
        var x = vec4<f32>(0.0);
        var y = vec4<f32>(0.0);
        if (t < p.T) {
          let base = ((b * p.T + t) * p.H + h) * D;
          x = load_q(base, idx % D4);
          y = load_dO(base, idx % D4);
        }
        qs[r * S + idx % D4] = x;
        dos[r * S + idx % D4] = y;
      }
      for (var r = lid; r < BR; r += NT) {
        let t = row0 + r;
        var a = 0.0;
        var c = 0.0;
        if (t < p.T) {
          a = lse[(b * p.H + h) * p.T + t] * ${LOG2E};
          c = delta[(b * p.H + h) * p.T + t];
        }
        lse2s[r] = a;
        dls[r] = c;
      }
      workgroupBarrier();
      var s: array<f32, ${KM * QN}>;
      var dp: array<f32, ${KM * QN}>;
${unroll(KM * QN, (x) => `      s[${x}] = 0.0;\n      dp[${x}] = 0.0;`)}
      for (var d4 = 0u; d4 < D4; d4++) {
${unroll(KM, (i) => `        let k${i} = ks[(tk + ${TK * i}u) * S + d4];\n        let v${i} = vs[(tk + ${TK * i}u) * S + d4];`)}
${unroll(QN, (j) => `        let q${j} = qs[(tq + ${TQ * j}u) * S + d4];\n        let g${j} = dos[(tq + ${TQ * j}u) * S + d4];`)}
${unroll(KM * QN, (x) => `        s[${x}] += dot(k${Math.floor(x / QN)}, q${x % QN});\n        dp[${x}] += dot(v${Math.floor(x / QN)}, g${x % QN});`)}
      }
${unroll(KM * QN, (x) => {
  const i = Math.floor(x / QN);
  const j = x % QN;
  return `      {
        let key = key0 + tk + ${TK * i}u;
        let r = tq + ${TQ * j}u;
        let row = row0 + r;
        let pr = select(0.0, exp2(s[${x}] - lse2s[r]), key <= row && key < p.T && row < p.T);
        ps[(tk + ${TK * i}u) * BR + r] = pr;
        dss[(tk + ${TK * i}u) * BR + r] = pr * (dp[${x}] - dls[r]);
      }`;
})}
      workgroupBarrier();
      let rEnd = min(BR, p.T - row0);
      for (var r = 0u; r < rEnd; r++) {
${unroll(KM, (i) => `        let p${i} = ps[(tk + ${TK * i}u) * BR + r];\n        let ds${i} = dss[(tk + ${TK * i}u) * BR + r];`)}
${unroll(DN, (j) => `        let g${j} = dos[r * S + min(tq + ${TQ * j}u, D4 - 1u)];\n        let q${j} = qs[r * S + min(tq + ${TQ * j}u, D4 - 1u)];`)}
${unroll(KM * DN, (x) => `        accV[${x}] += p${Math.floor(x / DN)} * g${x % DN};\n        accK[${x}] += ds${Math.floor(x / DN)} * q${x % DN};`)}
      }
    }
  }

${unroll(
  KM,
  (i) => `  {
    let key = key0 + tk + ${TK * i}u;
    if (key < p.T) {
      let base = ((b * p.T + key) * p.HKV + hk) * D;
${unroll(
  DN,
  (j) =>
    `      ${dGuard(j)}{\n        store_dk(base, tq + ${TQ * j}u, accK[${i * DN + j}] * p.scale);\n        store_dv(base, tq + ${TQ * j}u, accV[${i * DN + j}]);\n      }`,
)}
    }
  }`,
)}
}
`;
}
