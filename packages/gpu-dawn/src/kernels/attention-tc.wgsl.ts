// WGSL generators of causal flash attention on subgroup matrices (tensor cores), f16 q/k/v/o/dO, f32
// softmax statistics, for head dims that are multiples of 16 (64 and 128 in the models).
//
// Each subgroup owns 16 query rows (forward, dQ) or 16 keys (dK/dV). Q.K^T, P.V, dO.V^T, dS.K, P^T.dO
// and dS^T.Q run on fragments; the element-wise softmax work goes through workgroup memory, because a
// fragment's elements cannot be addressed: a product is stored as f32, each row is processed by
// `16 / subgroupSize`..`subgroupSize / 16` lanes (row maxima and sums combined with subgroup shuffles),
// and P (or dS) is written back as f16 for the next product. K/V (and Q/dO) tiles are staged in
// workgroup memory with 16-byte loads, rows padded by 8 halves; rows past T are zero-filled.
//
// Forward modes:
//  - online: one pass; the running output stays in f32 fragments. Its per-row rescaling (a fragment
//    cannot be scaled per row) is lazy: the running max only moves when a block's max exceeds it by
//    more than 8 (log2 units), so P <= 256 stays exact in f16, and then the output fragments make one
//    round trip through workgroup memory; after the first blocks this almost never happens.
//  - stats + output: two passes without any rescaling: the first computes each row's logsumexp, the
//    second P = exp(S - lse) exactly and accumulates P.V. One more Q.K^T; needs no f32 fragment loads.
// Backward: dQ (one workgroup per query block, walking the causal key blocks) and dK/dV (one per key
// block and kv head, walking the query heads of its group and the query blocks at or after the keys:
// fixed order, no atomics), both recomputing P from q, k and lse; delta = rowsum(dO * O) comes from the
// existing row kernel.
import { ATTENTION_PARAMS_WGSL, LN2, LOG2E, NEG } from './attention.wgsl.js';
import {
  BUFFER_VIEW_DIRECTIVE,
  f16Tile,
  f32Scratch,
  subgroupMatrixOps,
  type F16Tile,
  type SubgroupMatrixOps,
} from './subgroup-matrix.wgsl.js';

export interface AttentionTcSpec {
  headDim: number;
  subgroupSize: number;
  bufferView: boolean;
  emulate: boolean;
}

export type AttentionForwardMode = 'online' | 'stats' | 'output';

/** Forward and dQ: subgroups per workgroup (16 query rows each) and keys per step. */
export interface TcQueryTiles {
  subgroups: number;
  keysPerBlock: number;
}

/** dK/dV: subgroups per workgroup (16 keys each) and query rows per step. */
export interface TcKeyTiles {
  subgroups: number;
  rowsPerBlock: number;
}

const FRAG = 16;

interface Dims {
  D: number;
  D16: number;
  C8: number;
  KS: number;
  SG: number;
  LPR: number;
  RPL: number;
}

function dims(spec: AttentionTcSpec): Dims {
  const D = spec.headDim;
  if (D % FRAG) throw new Error(`tensor-core attention needs head_dim % 16 == 0, got ${D}`);
  const SG = spec.subgroupSize;
  return {
    D,
    D16: D / FRAG,
    C8: D / 8,
    KS: D + 8,
    SG,
    LPR: Math.max(1, SG / FRAG),
    RPL: Math.max(1, FRAG / SG),
  };
}

const pad = (cols: number) => cols + 8;

/** Workgroup memory of the forward kernel, in bytes. */
export function tcForwardSharedBytes(headDim: number, t: TcQueryTiles, mode: AttentionForwardMode): number {
  const KS = headDim + 8;
  const BR = t.subgroups * FRAG;
  const BC = t.keysPerBlock;
  const kv = Math.max(2 * BC, BR) * KS * 2;
  const sc = t.subgroups * FRAG * Math.max(BC, FRAG) * 4;
  const pt = mode === 'stats' ? 0 : t.subgroups * FRAG * pad(BC) * 2;
  return kv + sc + pt + t.subgroups * FRAG * 8 + 16;
}

export function tcDqSharedBytes(headDim: number, t: TcQueryTiles): number {
  const KS = headDim + 8;
  const BR = t.subgroups * FRAG;
  const BC = t.keysPerBlock;
  return Math.max(2 * BC, BR) * KS * 2 + 2 * t.subgroups * FRAG * BC * 4 + t.subgroups * FRAG * pad(BC) * 2;
}

export function tcDkdvSharedBytes(headDim: number, t: TcKeyTiles): number {
  const KS = headDim + 8;
  const BK = t.subgroups * FRAG;
  const BR = t.rowsPerBlock;
  return (
    2 * BK * KS * 2 +
    2 * BR * KS * 2 +
    2 * t.subgroups * FRAG * BR * 4 +
    2 * t.subgroups * FRAG * pad(BR) * 2 +
    8 * BR
  );
}

export function tcQueryTilesProblem(headDim: number, t: TcQueryTiles): string | undefined {
  if (!Number.isInteger(t.subgroups) || t.subgroups < 1) return `subgroups must be >= 1, got ${t.subgroups}`;
  if (!Number.isInteger(t.keysPerBlock) || t.keysPerBlock < FRAG || t.keysPerBlock % FRAG)
    return `keysPerBlock must be a multiple of 16, got ${t.keysPerBlock}`;
  if (t.subgroups * FRAG > 2 * t.keysPerBlock)
    return `${t.subgroups} subgroups (${t.subgroups * FRAG} rows) need keysPerBlock >= ${(t.subgroups * FRAG) / 2} to stage Q`;
  if (headDim % FRAG) return `head_dim ${headDim} is not a multiple of 16`;
  return undefined;
}

export function tcKeyTilesProblem(headDim: number, t: TcKeyTiles): string | undefined {
  if (!Number.isInteger(t.subgroups) || t.subgroups < 1) return `subgroups must be >= 1, got ${t.subgroups}`;
  if (!Number.isInteger(t.rowsPerBlock) || t.rowsPerBlock < FRAG || t.rowsPerBlock % FRAG)
    return `rowsPerBlock must be a multiple of 16, got ${t.rowsPerBlock}`;
  if (headDim % FRAG) return `head_dim ${headDim} is not a multiple of 16`;
  return undefined;
}

// ---- shared pieces -----------------------------------------------------------------------------------

function header(spec: AttentionTcSpec, ops: SubgroupMatrixOps): string {
  return `${ops.directives}
${spec.bufferView ? BUFFER_VIEW_DIRECTIVE : ''}
${ATTENTION_PARAMS_WGSL}`;
}

/** Copy `rows` rows of a [B, T, heads, D] f16 tensor (bound as vec4<u32>) into a tile; rows >= T are 0. */
function loadRows(
  d: Dims,
  tile: F16Tile,
  base: string,
  rows: number,
  t0: string,
  src: string,
  head: string,
  heads: string,
  threads: number,
): string {
  return `for (var e = tid; e < ${rows * d.C8}u; e += ${threads}u) {
    let r = e / ${d.C8}u;
    let c = e % ${d.C8}u;
    let t = ${t0} + r;
    var x = vec4<u32>(0u);
    if (t < p.T) { x = ${src}[((b * p.T + t) * ${heads} + ${head}) * ${d.C8}u + c]; }
    ${tile.store16(`${base} + r * ${d.KS}u + c * 8u`, 'x')}
  }`;
}

/** Unrolled statements for the rows a lane owns: `body(i, r)` with r the row within the subgroup. */
function laneRows(d: Dims, body: (i: number, r: string) => string): string {
  return Array.from({ length: d.RPL }, (_, i) =>
    body(i, d.RPL > 1 ? `(lane + ${i * d.SG}u)` : `(lane / ${d.LPR}u)`),
  ).join('\n');
}

/** x combined over the LPR lanes of a row with `op` (max or +). */
function rowReduce(d: Dims, x: string, op: 'max' | 'add'): string {
  const out: string[] = [];
  for (let off = 1; off < d.LPR; off *= 2) {
    out.push(
      op === 'max'
        ? `${x} = max(${x}, subgroupShuffleXor(${x}, ${off}u));`
        : `${x} = ${x} + subgroupShuffleXor(${x}, ${off}u);`,
    );
  }
  return out.join(' ');
}

/** For the columns this lane handles in a row of `cols`: interleaved so a row's lanes read neighbours. */
function laneCols(d: Dims, cols: number, body: (c: string) => string): string {
  const per = cols / d.LPR;
  return `for (var jj = 0u; jj < ${per}u; jj++) {
      let c = ${d.LPR > 1 ? `lane % ${d.LPR}u + jj * ${d.LPR}u` : 'jj'};
      ${body('c')}
    }`;
}

/**
 * Write a 16 x 16 f32 fragment parked at scratch[base] (stride 16) as f16 rows of a [B, T, heads, D]
 * tensor: 8 halves per 16-byte store; `factor(r)` scales row r.
 */
function writeFragment(
  d: Dims,
  base: string,
  row0: string,
  col16: number,
  out: string,
  head: string,
  heads: string,
  factor: (r: string) => string,
): string {
  const pk = (i: number) => `bitcast<u32>(vec2<f16>(f16(sc[s + ${i}u] * f), f16(sc[s + ${i + 1}u] * f)))`;
  return `for (var e = lane; e < 32u; e += ${d.SG}u) {
    let r = e / 2u;
    let t = ${row0} + r;
    if (t < p.T) {
      let s = ${base} + r * 16u + (e % 2u) * 8u;
      let f = ${factor('r')};
      ${out}[((b * p.T + t) * ${heads} + ${head}) * ${d.C8}u + ${col16 * 2}u + e % 2u] = vec4<u32>(${pk(0)}, ${pk(2)}, ${pk(4)}, ${pk(6)});
    }
  }`;
}

/**
 * A query-block workgroup's coordinates (block qb, head h, batch b, its KV head hk, its rows, this
 * subgroup's first row and its scratch offset: `BR` rows per block, `sgStride` floats per subgroup); the
 * last query blocks run first.
 */
const queryBlockCoordinates = (BR: number, sgStride: number) => `let qb = p.nBlocks - 1u - wid.x;
  let h = wid.y;
  let b = wid.z;
  let hk = h / p.G;
  let row0 = qb * ${BR}u;
  let rowsEnd = min(row0 + ${BR}u, p.T);
  let sgRow0 = row0 + sg * 16u;
  let sgS = sg * ${sgStride}u;`;

const entry = (threads: number) => `@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32) {`;

// ---- forward -------------------------------------------------------------------------------------------

/**
 * Forward. Bindings: q, k (f16 as vec4<u32>), then online: v, o, lse (written); stats: lse (written);
 * output: v, o (written), lse (read).
 */
export function tcAttentionForwardWgsl(
  spec: AttentionTcSpec,
  t: TcQueryTiles,
  mode: AttentionForwardMode,
): string {
  const problem = tcQueryTilesProblem(spec.headDim, t);
  if (problem) throw new Error(`tensor-core attention forward: ${problem}`);
  const d = dims(spec);
  const ops = subgroupMatrixOps({ m: FRAG, n: FRAG, k: FRAG }, spec.emulate);
  const NSG = t.subgroups;
  const BR = NSG * FRAG;
  const BC = t.keysPerBlock;
  const threads = NSG * d.SG;
  const PS = pad(BC);
  const SCS = Math.max(BC, FRAG); // scratch row stride (16 x SCS floats per subgroup)
  const kv = f16Tile('kv', Math.max(2 * BC, BR) * d.KS, spec.bufferView);
  const pt = f16Tile('pt', NSG * FRAG * PS, spec.bufferView);
  const scratch = f32Scratch('sc', NSG * FRAG * SCS);
  const withV = mode !== 'stats';

  const qFrags = Array.from(
    { length: d.D16 },
    (_, x) => `let qf${x} = ${ops.left(kv.src, `sg * ${FRAG * d.KS}u + ${x * FRAG}u`, `${d.KS}u`, false)};`,
  ).join('\n  ');
  const oDecl = withV
    ? Array.from({ length: d.D16 }, (_, x) => `var o${x} = ${ops.zero()};`).join('\n  ')
    : '';

  // S = Q K^T for this subgroup's 16 rows, parked in its scratch rows.
  const scores = Array.from({ length: BC / FRAG }, (_, j) => {
    const lines = [`var s${j} = ${ops.zero()};`];
    for (let x = 0; x < d.D16; x++)
      lines.push(
        `s${j} = ${ops.mma(`qf${x}`, ops.right(kv.src, `${j * FRAG * d.KS + x * FRAG}u`, `${d.KS}u`, true), `s${j}`)};`,
      );
    lines.push(ops.store(scratch.src, `sg * ${FRAG * SCS}u + ${j * FRAG}u`, `s${j}`, `${SCS}u`));
    return `{\n      ${lines.join('\n      ')}\n    }`;
  }).join('\n    ');

  const pv = Array.from({ length: withV ? BC / FRAG : 0 }, (_, kk) => {
    const lines = [`let pl = ${ops.left(pt.src, `sg * ${FRAG * PS}u + ${kk * FRAG}u`, `${PS}u`, false)};`];
    for (let x = 0; x < d.D16; x++)
      lines.push(
        `o${x} = ${ops.mma('pl', ops.right(kv.src, `${(BC + kk * FRAG) * d.KS + x * FRAG}u`, `${d.KS}u`, false), `o${x}`)};`,
      );
    return `{\n      ${lines.join('\n      ')}\n    }`;
  }).join('\n    ');

  // Per lane row state.
  const state = laneRows(d, (i) =>
    mode === 'output' ? `var lse2_${i} = 0.0;` : `var m_${i} = ${NEG};\n  var l_${i} = 0.0;`,
  );
  const readLse =
    mode === 'output'
      ? laneRows(
          d,
          (i, r) => `{
    let row = sgRow0 + ${r};
    if (row < p.T) { lse2_${i} = lseIn[(b * p.H + h) * p.T + row] * ${LOG2E}; }
  }`,
        )
      : '';

  const score = (c: string) =>
    `select(sc[sgS + r * ${SCS}u + ${c}] * p.scaleLog2, ${NEG}, key0 + ${c} > row || key0 + ${c} >= p.T || row >= p.T)`;
  const softmax = laneRows(d, (i, r0) => {
    const rr = `let r = ${r0};\n    let row = sgRow0 + r;`;
    if (mode === 'output') {
      return `{
    ${rr}
    ${laneCols(d, BC, (c) => `${pt.write(`sg * ${FRAG * PS}u + r * ${PS}u + ${c}`, `f16(exp2(${score(c)} - lse2_${i}))`)}`)}
  }`;
    }
    const max = `var bm = ${NEG};
    ${laneCols(d, BC, (c) => `bm = max(bm, ${score(c)});`)}
    ${rowReduce(d, 'bm', 'max')}`;
    if (mode === 'stats') {
      return `{
    ${rr}
    ${max}
    let mNew = max(m_${i}, bm);
    var sum = 0.0;
    ${laneCols(d, BC, (c) => `sum += exp2(${score(c)} - mNew);`)}
    ${rowReduce(d, 'sum', 'add')}
    l_${i} = l_${i} * exp2(m_${i} - mNew) + sum;
    m_${i} = mNew;
  }`;
    }
    // online: lazy running max (moves only when exceeded by more than 8, i.e. P up to 256)
    return `{
    ${rr}
    ${max}
    let mNew = select(m_${i}, bm, bm > m_${i} + 8.0);
    let alpha = exp2(m_${i} - mNew);
    m_${i} = mNew;
    var sum = 0.0;
    ${laneCols(
      d,
      BC,
      (c) => `let pr = exp2(${score(c)} - mNew);
      sum += pr;
      ${pt.write(`sg * ${FRAG * PS}u + r * ${PS}u + ${c}`, 'f16(pr)')}`,
    )}
    ${rowReduce(d, 'sum', 'add')}
    l_${i} = l_${i} * alpha + sum;
    if (lane % ${d.LPR}u == 0u) { rowAlpha[sg * 16u + r] = alpha; }
    if (alpha != 1.0 && kb > 0u) { rescale = 1u; }
  }`;
  });

  // Online: rescale the output fragments' rows by alpha (round trip through the scratch rows).
  const rescaleBlock =
    mode === 'online'
      ? `if (workgroupUniformLoad(&rescale) != 0u) {
      ${Array.from(
        { length: d.D16 },
        (_, x) => `${ops.store(scratch.src, 'sgS', `o${x}`, '16u')}
      workgroupBarrier();
      for (var e = lane; e < 256u; e += ${d.SG}u) { sc[sgS + e] = sc[sgS + e] * rowAlpha[sg * 16u + e / 16u]; }
      workgroupBarrier();
      o${x} = ${ops.acc(scratch.src, 'sgS', '16u')};
      workgroupBarrier();`,
      ).join('\n      ')}
    }`
      : 'workgroupBarrier();';

  const finalStats =
    mode === 'output'
      ? ''
      : laneRows(
          d,
          (i, r) => `{
    let r = ${r};
    let row = sgRow0 + r;
    if (lane % ${d.LPR}u == 0u) {
      ${mode === 'online' ? `rowL[sg * 16u + r] = l_${i};` : ''}
      if (row < p.T) { lse[(b * p.H + h) * p.T + row] = (m_${i} + log2(l_${i})) * ${LN2}; }
    }
  }`,
        );
  const writeO = withV
    ? `workgroupBarrier();
  ${Array.from(
    { length: d.D16 },
    (_, x) => `${ops.store(scratch.src, 'sgS', `o${x}`, '16u')}
  workgroupBarrier();
  ${writeFragment(d, 'sgS', 'sgRow0', x, 'o', 'h', 'p.H', (r) => (mode === 'online' ? `1.0 / rowL[sg * 16u + ${r}]` : '1.0'))}
  workgroupBarrier();`,
  ).join('\n  ')}`
    : '';

  const bindings =
    mode === 'online'
      ? `@group(0) @binding(3) var<storage, read_write> o: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;`
      : mode === 'stats'
        ? `@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;`
        : `@group(0) @binding(3) var<storage, read_write> o: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> lseIn: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;`;

  const body = `
${entry(threads)}
  ${kv.init}
  ${withV ? pt.init : ''}
  ${ops.prologue}
  // Later query blocks see more keys: they start first so the long ones are not the tail.
  ${queryBlockCoordinates(BR, FRAG * SCS)}
  ${loadRows(d, kv, '0u', BR, 'row0', 'q', 'h', 'p.H', threads)}
  workgroupBarrier();
  ${qFrags}
  ${oDecl}
  ${state}
  ${readLse}
  // Causal: the block's last row is rowsEnd - 1, so keys [0, rowsEnd) are all it can see.
  let nKeyBlocks = (rowsEnd + ${BC - 1}u) / ${BC}u;
  for (var kb = 0u; kb < nKeyBlocks; kb++) {
    let key0 = kb * ${BC}u;
    workgroupBarrier(); // the previous block's (or Q's) reads of kv and pt are done
    ${mode === 'online' ? 'if (tid == 0u) { rescale = 0u; }' : ''}
    ${loadRows(d, kv, '0u', BC, 'key0', 'k', 'hk', 'p.HKV', threads)}
    ${withV ? loadRows(d, kv, `${BC * d.KS}u`, BC, 'key0', 'v', 'hk', 'p.HKV', threads) : ''}
    workgroupBarrier();
    // A subgroup whose rows all precede the block's keys skips the products (its P row is all 0).
    let busy = key0 <= sgRow0 + 15u && sgRow0 < p.T;
    if (busy) {
    ${scores}
    }
    workgroupBarrier();
    ${softmax}
    ${withV ? rescaleBlock : ''}
    ${
      withV
        ? `if (busy) {
    ${pv}
    }`
        : ''
    }
  }
  ${finalStats}
  ${writeO}
}
`;
  return `${header(spec, ops)}
@group(0) @binding(0) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<u32>>;
${withV ? '@group(0) @binding(2) var<storage, read> v: array<vec4<u32>>;' : ''}
${bindings}
${kv.decl}
${withV ? pt.decl : ''}
${scratch.decl}
${mode === 'online' ? `var<workgroup> rowAlpha: array<f32, ${BR}>;\nvar<workgroup> rowL: array<f32, ${BR}>;\nvar<workgroup> rescale: u32;` : ''}
${ops.declarations()}
${body}`;
}

// ---- backward: dQ -------------------------------------------------------------------------------------

/** dQ. Bindings: q, k, v, dO (f16 as vec4<u32>), lse, delta (f32), dq (written). */
export function tcAttentionDqWgsl(spec: AttentionTcSpec, t: TcQueryTiles): string {
  const problem = tcQueryTilesProblem(spec.headDim, t);
  if (problem) throw new Error(`tensor-core attention dQ: ${problem}`);
  const d = dims(spec);
  const ops = subgroupMatrixOps({ m: FRAG, n: FRAG, k: FRAG }, spec.emulate);
  const NSG = t.subgroups;
  const BR = NSG * FRAG;
  const BC = t.keysPerBlock;
  const threads = NSG * d.SG;
  const PS = pad(BC);
  const kv = f16Tile('kv', Math.max(2 * BC, BR) * d.KS, spec.bufferView);
  const dst = f16Tile('dst', NSG * FRAG * PS, spec.bufferView);
  const scratch = f32Scratch('sc', 2 * NSG * FRAG * BC);
  const dpOff = NSG * FRAG * BC;

  const frags = (name: string) =>
    Array.from(
      { length: d.D16 },
      (_, x) =>
        `let ${name}${x} = ${ops.left(kv.src, `sg * ${FRAG * d.KS}u + ${x * FRAG}u`, `${d.KS}u`, false)};`,
    ).join('\n  ');
  const products = Array.from({ length: BC / FRAG }, (_, j) => {
    const lines = [`var s${j} = ${ops.zero()};`, `var dp${j} = ${ops.zero()};`];
    for (let x = 0; x < d.D16; x++) {
      lines.push(
        `s${j} = ${ops.mma(`qf${x}`, ops.right(kv.src, `${j * FRAG * d.KS + x * FRAG}u`, `${d.KS}u`, true), `s${j}`)};`,
      );
      lines.push(
        `dp${j} = ${ops.mma(`gf${x}`, ops.right(kv.src, `${(BC + j * FRAG) * d.KS + x * FRAG}u`, `${d.KS}u`, true), `dp${j}`)};`,
      );
    }
    lines.push(ops.store(scratch.src, `sg * ${FRAG * BC}u + ${j * FRAG}u`, `s${j}`, `${BC}u`));
    lines.push(ops.store(scratch.src, `${dpOff}u + sg * ${FRAG * BC}u + ${j * FRAG}u`, `dp${j}`, `${BC}u`));
    return `{\n      ${lines.join('\n      ')}\n    }`;
  }).join('\n    ');
  const dsk = Array.from({ length: BC / FRAG }, (_, kk) => {
    const lines = [`let dl = ${ops.left(dst.src, `sg * ${FRAG * PS}u + ${kk * FRAG}u`, `${PS}u`, false)};`];
    for (let x = 0; x < d.D16; x++)
      lines.push(
        `dq${x} = ${ops.mma('dl', ops.right(kv.src, `${kk * FRAG * d.KS + x * FRAG}u`, `${d.KS}u`, false), `dq${x}`)};`,
      );
    return `{\n      ${lines.join('\n      ')}\n    }`;
  }).join('\n    ');
  const state = laneRows(
    d,
    (i, r) => `var lse2_${i} = 0.0;
  var dl_${i} = 0.0;
  {
    let row = sgRow0 + ${r};
    if (row < p.T) {
      lse2_${i} = lse[(b * p.H + h) * p.T + row] * ${LOG2E};
      dl_${i} = delta[(b * p.H + h) * p.T + row];
    }
  }`,
  );
  const elementwise = laneRows(
    d,
    (i, r0) => `{
    let r = ${r0};
    let row = sgRow0 + r;
    ${laneCols(
      d,
      BC,
      (c) => `let at = sg * ${FRAG * BC}u + r * ${BC}u + ${c};
      let key = key0 + ${c};
      let pr = select(exp2(sc[at] * p.scaleLog2 - lse2_${i}), 0.0, key > row || key >= p.T || row >= p.T);
      ${dst.write(`sg * ${FRAG * PS}u + r * ${PS}u + ${c}`, `f16(pr * (sc[${dpOff}u + at] - dl_${i}))`)}`,
    )}
  }`,
  );
  const writeDq = Array.from(
    { length: d.D16 },
    (_, x) => `${ops.store(scratch.src, 'sgS', `dq${x}`, '16u')}
  workgroupBarrier();
  ${writeFragment(d, 'sgS', 'sgRow0', x, 'dq', 'h', 'p.H', () => 'p.scale')}
  workgroupBarrier();`,
  ).join('\n  ');

  const main = `
${entry(threads)}
  ${kv.init}
  ${dst.init}
  ${ops.prologue}
  ${queryBlockCoordinates(BR, FRAG * BC)}
  ${loadRows(d, kv, '0u', BR, 'row0', 'q', 'h', 'p.H', threads)}
  workgroupBarrier();
  ${frags('qf')}
  workgroupBarrier();
  ${loadRows(d, kv, '0u', BR, 'row0', 'dO', 'h', 'p.H', threads)}
  workgroupBarrier();
  ${frags('gf')}
  ${Array.from({ length: d.D16 }, (_, x) => `var dq${x} = ${ops.zero()};`).join('\n  ')}
  ${state}
  let nKeyBlocks = (rowsEnd + ${BC - 1}u) / ${BC}u;
  for (var kb = 0u; kb < nKeyBlocks; kb++) {
    let key0 = kb * ${BC}u;
    workgroupBarrier(); // the previous block's reads of kv and dst are done
    ${loadRows(d, kv, '0u', BC, 'key0', 'k', 'hk', 'p.HKV', threads)}
    ${loadRows(d, kv, `${BC * d.KS}u`, BC, 'key0', 'v', 'hk', 'p.HKV', threads)}
    workgroupBarrier();
    let busy = key0 <= sgRow0 + 15u && sgRow0 < p.T;
    if (busy) {
    ${products}
    }
    workgroupBarrier();
    ${elementwise}
    workgroupBarrier();
    if (busy) {
    ${dsk}
    }
  }
  workgroupBarrier();
  ${writeDq}
}
`;
  return `${header(spec, ops)}
@group(0) @binding(0) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> dO: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dq: array<vec4<u32>>;
@group(0) @binding(7) var<uniform> p: Params;
${kv.decl}
${dst.decl}
${scratch.decl}
${ops.declarations()}
${main}
`;
}

// ---- backward: dK and dV ------------------------------------------------------------------------------

/** dK/dV. Bindings: q, k, v, dO (f16 as vec4<u32>), lse, delta (f32), dk, dv (written). */
export function tcAttentionDkdvWgsl(spec: AttentionTcSpec, t: TcKeyTiles): string {
  const problem = tcKeyTilesProblem(spec.headDim, t);
  if (problem) throw new Error(`tensor-core attention dK/dV: ${problem}`);
  const d = dims(spec);
  const ops = subgroupMatrixOps({ m: FRAG, n: FRAG, k: FRAG }, spec.emulate);
  const NSG = t.subgroups;
  const BK = NSG * FRAG;
  const BR = t.rowsPerBlock;
  const threads = NSG * d.SG;
  const PS = pad(BR);
  const kvt = f16Tile('kvt', 2 * BK * d.KS, spec.bufferView);
  const qd = f16Tile('qd', 2 * BR * d.KS, spec.bufferView);
  const pd = f16Tile('pd', 2 * NSG * FRAG * PS, spec.bufferView);
  const scratch = f32Scratch('sc', 2 * NSG * FRAG * BR);
  const dpOff = NSG * FRAG * BR;
  const dsOff = NSG * FRAG * PS;

  // S^T = K Q^T and dP^T = V dO^T for this subgroup's 16 keys; K and V fragments reused across blocks j.
  const products: string[] = [];
  for (let j = 0; j < BR / FRAG; j++)
    products.push(`var st${j} = ${ops.zero()};`, `var dpt${j} = ${ops.zero()};`);
  for (let x = 0; x < d.D16; x++) {
    products.push(`{`);
    products.push(
      `  let kl = ${ops.left(kvt.src, `sg * ${FRAG * d.KS}u + ${x * FRAG}u`, `${d.KS}u`, false)};`,
    );
    products.push(
      `  let vl = ${ops.left(kvt.src, `${BK * d.KS}u + sg * ${FRAG * d.KS}u + ${x * FRAG}u`, `${d.KS}u`, false)};`,
    );
    for (let j = 0; j < BR / FRAG; j++) {
      products.push(
        `  st${j} = ${ops.mma('kl', ops.right(qd.src, `${j * FRAG * d.KS + x * FRAG}u`, `${d.KS}u`, true), `st${j}`)};`,
      );
      products.push(
        `  dpt${j} = ${ops.mma('vl', ops.right(qd.src, `${(BR + j * FRAG) * d.KS + x * FRAG}u`, `${d.KS}u`, true), `dpt${j}`)};`,
      );
    }
    products.push(`}`);
  }
  for (let j = 0; j < BR / FRAG; j++) {
    products.push(ops.store(scratch.src, `sg * ${FRAG * BR}u + ${j * FRAG}u`, `st${j}`, `${BR}u`));
    products.push(
      ops.store(scratch.src, `${dpOff}u + sg * ${FRAG * BR}u + ${j * FRAG}u`, `dpt${j}`, `${BR}u`),
    );
  }
  const accumulate = Array.from({ length: BR / FRAG }, (_, kk) => {
    const lines = [
      `let pl = ${ops.left(pd.src, `sg * ${FRAG * PS}u + ${kk * FRAG}u`, `${PS}u`, false)};`,
      `let dl = ${ops.left(pd.src, `${dsOff}u + sg * ${FRAG * PS}u + ${kk * FRAG}u`, `${PS}u`, false)};`,
    ];
    for (let x = 0; x < d.D16; x++) {
      lines.push(
        `dv${x} = ${ops.mma('pl', ops.right(qd.src, `${(BR + kk * FRAG) * d.KS + x * FRAG}u`, `${d.KS}u`, false), `dv${x}`)};`,
      );
      lines.push(
        `dk${x} = ${ops.mma('dl', ops.right(qd.src, `${kk * FRAG * d.KS + x * FRAG}u`, `${d.KS}u`, false), `dk${x}`)};`,
      );
    }
    return `{\n        ${lines.join('\n        ')}\n      }`;
  }).join('\n      ');
  const elementwise = laneRows(
    d,
    (_, r0) => `{
      let r = ${r0};
      let key = sgKey0 + r;
      ${laneCols(
        d,
        BR,
        (c) => `let at = sg * ${FRAG * BR}u + r * ${BR}u + ${c};
        let row = row0 + ${c};
        let pr = select(exp2(sc[at] * p.scaleLog2 - lse2s[${c}]), 0.0, key > row || key >= p.T || row >= p.T);
        ${pd.write(`sg * ${FRAG * PS}u + r * ${PS}u + ${c}`, 'f16(pr)')}
        ${pd.write(`${dsOff}u + sg * ${FRAG * PS}u + r * ${PS}u + ${c}`, `f16(pr * (sc[${dpOff}u + at] - dls[${c}]))`)}`,
      )}
    }`,
  );
  const write = (name: string, factor: string) =>
    Array.from(
      { length: d.D16 },
      (_, x) => `${ops.store(scratch.src, 'sgS', `${name}${x}`, '16u')}
  workgroupBarrier();
  ${writeFragment(d, 'sgS', 'sgKey0', x, name, 'hk', 'p.HKV', () => factor)}
  workgroupBarrier();`,
    ).join('\n  ');

  const main = `
${entry(threads)}
  ${kvt.init}
  ${qd.init}
  ${pd.init}
  ${ops.prologue}
  // The first key blocks are seen by the most queries: they run first.
  let kb = wid.x;
  let hk = wid.y;
  let b = wid.z;
  let key0 = kb * ${BK}u;
  let sgKey0 = key0 + sg * 16u;
  let sgS = sg * ${FRAG * BR}u;
  ${loadRows(d, kvt, '0u', BK, 'key0', 'k', 'hk', 'p.HKV', threads)}
  ${loadRows(d, kvt, `${BK * d.KS}u`, BK, 'key0', 'v', 'hk', 'p.HKV', threads)}
  ${Array.from({ length: d.D16 }, (_, x) => `var dk${x} = ${ops.zero()};\n  var dv${x} = ${ops.zero()};`).join('\n  ')}
  // Query rows before key0 see none of these keys.
  let firstQueryBlock = key0 / ${BR}u;
  for (var g = 0u; g < p.G; g++) {
    let h = hk * p.G + g;
    for (var qb = firstQueryBlock; qb < p.nBlocks; qb++) {
      let row0 = qb * ${BR}u;
      workgroupBarrier(); // the previous step's reads of qd, pd and the row stats are done
      ${loadRows(d, qd, '0u', BR, 'row0', 'q', 'h', 'p.H', threads)}
      ${loadRows(d, qd, `${BR * d.KS}u`, BR, 'row0', 'dO', 'h', 'p.H', threads)}
      for (var r = tid; r < ${BR}u; r += ${threads}u) {
        let row = row0 + r;
        var a = 0.0;
        var c = 0.0;
        if (row < p.T) {
          a = lse[(b * p.H + h) * p.T + row] * ${LOG2E};
          c = delta[(b * p.H + h) * p.T + row];
        }
        lse2s[r] = a;
        dls[r] = c;
      }
      workgroupBarrier();
      // A subgroup whose keys all follow the block's rows (or lie past T) skips the products.
      let busy = sgKey0 <= row0 + ${BR - 1}u && sgKey0 < p.T;
      if (busy) {
      ${products.join('\n      ')}
      }
      workgroupBarrier();
      ${elementwise}
      workgroupBarrier();
      if (busy) {
      ${accumulate}
      }
    }
  }
  workgroupBarrier();
  ${write('dk', 'p.scale')}
  ${write('dv', '1.0')}
}
`;
  return `${header(spec, ops)}
@group(0) @binding(0) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> dO: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read_write> dv: array<vec4<u32>>;
@group(0) @binding(8) var<uniform> p: Params;
${kvt.decl}
${qd.decl}
${pd.decl}
${scratch.decl}
var<workgroup> lse2s: array<f32, ${BR}>;
var<workgroup> dls: array<f32, ${BR}>;
${ops.declarations()}
${main}
`;
}
