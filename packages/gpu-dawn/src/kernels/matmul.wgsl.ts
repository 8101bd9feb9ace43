// WGSL generators for C = alpha * op(A) op(B) + beta * C (row-major, batched, strided), three paths:
//  - simple: one output element per invocation; any shape, layout and alignment (the fallback).
//  - tiled: shared-memory tiles with register blocking (TM x TN outputs per invocation), double-buffered
//    shared tiles fed by a register prefetch so global loads overlap the math, vec4 global loads where
//    the layout is aligned; f32 math, operands f32 or f16-stored.
//  - subgroup-matrix: tensor cores through `chromium_experimental_subgroup_matrix`: f16 operands,
//    f32 accumulators, staged through shared memory (any shape) or loaded straight from global memory
//    (tile-aligned shapes).
// Every generator is specialised at compile time on layout, dtypes, alignment and tile sizes, and fully
// unrolls its inner loops into named variables so accumulators stay in registers (no indexed arrays,
// which compilers may spill to local memory).

import { subgroupMatrixOps, type MatrixSource } from './subgroup-matrix.wgsl.js';

export type MatmulStorageType = 'f32' | 'f16';

/** What every matmul kernel variant is specialised on besides its tile configuration. */
export interface MatmulLayout {
  /** A is stored [K, M] (row-major) and read as its transpose. */
  transA: boolean;
  /** B is stored [N, K] (row-major) and read as its transpose. */
  transB: boolean;
  aType: MatmulStorageType;
  bType: MatmulStorageType;
  cType: MatmulStorageType;
  /** Bias added per column of C in the epilogue (its storage type), if any. */
  bias?: MatmulStorageType;
  /** Split-K first pass: raw partial sums into an f32 workspace (no alpha, beta or bias). */
  splitK?: boolean;
}

/**
 * Uniform block shared by all variants (all u32 except alpha/beta). Offsets, leading dimensions (row
 * strides) and batch strides are in elements. Split-K: workgroup z = split * batch + matrix; split s
 * covers K range [s * kChunk, (s + 1) * kChunk) and writes at C offset s * splitStride. tilesM, tilesN,
 * gridX: the tensor-core kernel's linear tile index (workgroup y * gridX + x).
 */
export const MATMUL_PARAMS_WGSL = /* wgsl */ `
struct Params {
  m: u32, n: u32, k: u32,
  lda: u32, ldb: u32, ldc: u32,
  offA: u32, offB: u32, offC: u32,
  strideA: u32, strideB: u32, strideC: u32,
  alpha: f32, beta: f32,
  batch: u32, kChunk: u32, splitStride: u32,
  tilesM: u32, tilesN: u32, gridX: u32,
}`;

function enables(layout: MatmulLayout, extra: string[] = []): string {
  const f16 = [layout.aType, layout.bType, storedC(layout), layout.bias].includes('f16');
  return [...(f16 ? ['enable f16;'] : []), ...extra].join('\n');
}

/**
 * The epilogue every path ends with: bounds check, alpha, beta * C (never read when beta is 0: BLAS
 * semantics, so C may start uninitialised or NaN), bias per column, conversion to C's storage type. The
 * split-K first pass stores raw partial sums instead (its workspace is f32).
 */
export function storeCFunction(cType: MatmulStorageType, bias?: MatmulStorageType, splitK = false): string {
  if (splitK) {
    return /* wgsl */ `
fn storeC(cBase: u32, gm: u32, gn: u32, v: f32) {
  if (gm < p.m && gn < p.n) { C[cBase + gm * p.ldc + gn] = v; }
}`;
  }
  return /* wgsl */ `
fn storeC(cBase: u32, gm: u32, gn: u32, v: f32) {
  if (gm < p.m && gn < p.n) {
    let idx = cBase + gm * p.ldc + gn;
    var out = p.alpha * v;
    if (p.beta != 0.0) { out = fma(p.beta, f32(C[idx]), out); }${bias ? '\n    out += f32(bias[gn]);' : ''}
    C[idx] = ${cType}(out);
  }
}`;
}

/** Bindings after A, B and C: the bias (if any), then the params. */
function tailBindings(layout: MatmulLayout): string {
  return layout.bias
    ? `@group(0) @binding(3) var<storage, read> bias: array<${layout.bias}>;
@group(0) @binding(4) var<uniform> p: Params;`
    : '@group(0) @binding(3) var<uniform> p: Params;';
}

/** The C element type a kernel writes: the workspace of a split-K first pass is f32. */
const storedC = (layout: MatmulLayout): MatmulStorageType => (layout.splitK ? 'f32' : layout.cType);

// ---- simple ----------------------------------------------------------------------------------------

export const SIMPLE_WORKGROUP = [16, 16] as const;

export function simpleMatmulWgsl(layout: MatmulLayout): string {
  const { transA, transB, aType, bType, cType } = layout;
  if (layout.splitK) throw new Error('the simple matmul kernel has no split-K variant');
  const aIdx = transA ? 'kk * p.lda + gm' : 'gm * p.lda + kk';
  const bIdx = transB ? 'gn * p.ldb + kk' : 'kk * p.ldb + gn';
  return /* wgsl */ `${enables(layout)}
${MATMUL_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> A: array<${aType}>;
@group(0) @binding(1) var<storage, read> B: array<${bType}>;
@group(0) @binding(2) var<storage, read_write> C: array<${storedC(layout)}>;
${tailBindings(layout)}
${storeCFunction(cType, layout.bias, layout.splitK)}

@compute @workgroup_size(${SIMPLE_WORKGROUP[0]}, ${SIMPLE_WORKGROUP[1]})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let gn = gid.x;
  let gm = gid.y;
  let batch = gid.z;
  if (gm >= p.m || gn >= p.n) { return; }
  let aBase = p.offA + batch * p.strideA;
  let bBase = p.offB + batch * p.strideB;
  var acc = 0.0;
  for (var kk = 0u; kk < p.k; kk++) {
    acc = fma(f32(A[aBase + ${aIdx}]), f32(B[bBase + ${bIdx}]), acc);
  }
  storeC(p.offC + batch * p.strideC, gm, gn, acc);
}
`;
}

// ---- tiled (f32 math) --------------------------------------------------------------------------------

/** Tile of the shared-memory path: a BM x BN block of C per workgroup, TM x TN per invocation. */
export interface TiledConfig {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
}

export interface TiledVariant extends MatmulLayout {
  config: TiledConfig;
  /** Load A with vec4 loads along its contiguous dimension (offset, ld, batch stride and that extent % 4 == 0). */
  vecA: boolean;
  vecB: boolean;
}

export function tiledThreads(c: TiledConfig): number {
  return (c.bm / c.tm) * (c.bn / c.tn);
}

/** vec4s of the tiled kernel's one workgroup array: two f32 stages of A (BK x BM) and B (BK x BN),
 * reused after the K loop as a band of C (BM / (TM / 4) rows x BN) for the epilogue. */
function tiledSharedVec4s(c: TiledConfig): number {
  const stages = (2 * c.bk * (c.bm + c.bn)) / 4;
  const band = ((c.bm / (c.tm / 4)) * c.bn) / 4;
  return Math.max(stages, band);
}

/** Workgroup memory the tiled kernel declares, in bytes. */
export function tiledSharedBytes(c: TiledConfig): number {
  return tiledSharedVec4s(c) * 16;
}

export function validateTiledConfig(c: TiledConfig): string | undefined {
  const { bm, bn, bk, tm, tn } = c;
  for (const [k, v] of Object.entries(c)) {
    if (!Number.isInteger(v) || v <= 0) return `${k} must be a positive integer, got ${v}`;
  }
  if (tm % 4 || tn % 4) return `tm and tn must be multiples of 4 (vec4 register blocks), got ${tm}, ${tn}`;
  if (bm % tm || bn % tn) return `bm, bn must be multiples of tm, tn, got ${bm}x${bn} / ${tm}x${tn}`;
  if (bk % 4) return `bk must be a multiple of 4 (vec4 loads along K), got ${bk}`;
  return undefined;
}

/** Per-thread loop over `total` cooperative load slots: `body(e)` for e = tid + l * THREADS. */
function slots(total: number, threads: number, body: (e: string, l: number) => string): string {
  const per = Math.ceil(total / threads);
  const out: string[] = [];
  for (let l = 0; l < per; l++) {
    const e = `(tid + ${l * threads}u)`;
    const guarded = (l + 1) * threads > total;
    const b = body(e, l);
    out.push(guarded ? `if (${e} < ${total}u) {\n${b}\n}` : `{\n${b}\n}`);
  }
  return out.join('\n');
}

export function tiledMatmulWgsl(v: TiledVariant): string {
  const { bm, bn, bk, tm, tn } = v.config;
  const problem = validateTiledConfig(v.config);
  if (problem) throw new Error(`tiled matmul config: ${problem}`);
  const threads = tiledThreads(v.config);
  const tx = bn / tn; // invocations along N
  const ty = bm / tm; // invocations along M
  const bm4 = bm / 4;
  const bn4 = bn / 4;
  const aElem = v.vecA ? `vec4<${v.aType}>` : v.aType;
  const bElem = v.vecB ? `vec4<${v.bType}>` : v.bType;
  const regA = v.vecA ? 'vec4<f32>' : 'f32';
  const regB = v.vecB ? 'vec4<f32>' : 'f32';
  const aSlots = v.vecA ? (bm * bk) / 4 : bm * bk;
  const bSlots = v.vecB ? (bn * bk) / 4 : bn * bk;
  const aPer = Math.ceil(aSlots / threads);
  const bPer = Math.ceil(bSlots / threads);

  // As holds the A tile transposed, [BK][BM] (vec4 along M), so the inner loop reads a vec4 of 4 rows;
  // Bs holds [BK][BN] (vec4 along N). Both are double-buffered: stage s starts at s * BK * B{M,N}/4.
  // Where each load slot lands: (row/col in the tile) for the four A and B cases, scalar or vec4.
  const loadA = (e: string, l: number): string => {
    if (v.vecA && !v.transA) {
      // A [M, K]: a vec4 runs along K; slot -> (row, k quad).
      return `let row = ${e} / ${bk / 4}u; let kq = ${e} % ${bk / 4}u;
let gm = m0 + row; let gk = k0 + kq * 4u;
var x = vec4<f32>(0.0);
if (gm < p.m && gk < kEnd) { x = vec4<f32>(A[(aBase + gm * p.lda + gk) / 4u]); }
ra${l} = x;`;
    }
    if (v.vecA && v.transA) {
      // A stored [K, M]: a vec4 runs along M.
      return `let krow = ${e} / ${bm4}u; let mq = ${e} % ${bm4}u;
let gm = m0 + mq * 4u; let gk = k0 + krow;
var x = vec4<f32>(0.0);
if (gm < p.m && gk < kEnd) { x = vec4<f32>(A[(aBase + gk * p.lda + gm) / 4u]); }
ra${l} = x;`;
    }
    if (!v.transA) {
      return `let row = ${e} / ${bk}u; let kk = ${e} % ${bk}u;
let gm = m0 + row; let gk = k0 + kk;
var x = 0.0;
if (gm < p.m && gk < kEnd) { x = f32(A[aBase + gm * p.lda + gk]); }
ra${l} = x;`;
    }
    return `let krow = ${e} / ${bm}u; let mm = ${e} % ${bm}u;
let gm = m0 + mm; let gk = k0 + krow;
var x = 0.0;
if (gm < p.m && gk < kEnd) { x = f32(A[aBase + gk * p.lda + gm]); }
ra${l} = x;`;
  };
  const storeA = (e: string, l: number): string => {
    if (v.vecA && !v.transA) {
      return `let row = ${e} / ${bk / 4}u; let kq = ${e} % ${bk / 4}u;
let base = dstA + kq * ${4 * bm4}u + row / 4u; let lane = row % 4u;
As[base][lane] = ra${l}.x; As[base + ${bm4}u][lane] = ra${l}.y;
As[base + ${2 * bm4}u][lane] = ra${l}.z; As[base + ${3 * bm4}u][lane] = ra${l}.w;`;
    }
    if (v.vecA && v.transA) {
      return `let krow = ${e} / ${bm4}u; let mq = ${e} % ${bm4}u;
As[dstA + krow * ${bm4}u + mq] = ra${l};`;
    }
    if (!v.transA) {
      return `let row = ${e} / ${bk}u; let kk = ${e} % ${bk}u;
As[dstA + kk * ${bm4}u + row / 4u][row % 4u] = ra${l};`;
    }
    return `let krow = ${e} / ${bm}u; let mm = ${e} % ${bm}u;
As[dstA + krow * ${bm4}u + mm / 4u][mm % 4u] = ra${l};`;
  };
  const loadB = (e: string, l: number): string => {
    if (v.vecB && !v.transB) {
      // B [K, N]: a vec4 runs along N.
      return `let krow = ${e} / ${bn4}u; let nq = ${e} % ${bn4}u;
let gn = n0 + nq * 4u; let gk = k0 + krow;
var x = vec4<f32>(0.0);
if (gn < p.n && gk < kEnd) { x = vec4<f32>(B[(bBase + gk * p.ldb + gn) / 4u]); }
rb${l} = x;`;
    }
    if (v.vecB && v.transB) {
      // B stored [N, K]: a vec4 runs along K.
      return `let nrow = ${e} / ${bk / 4}u; let kq = ${e} % ${bk / 4}u;
let gn = n0 + nrow; let gk = k0 + kq * 4u;
var x = vec4<f32>(0.0);
if (gn < p.n && gk < kEnd) { x = vec4<f32>(B[(bBase + gn * p.ldb + gk) / 4u]); }
rb${l} = x;`;
    }
    if (!v.transB) {
      return `let krow = ${e} / ${bn}u; let nn = ${e} % ${bn}u;
let gn = n0 + nn; let gk = k0 + krow;
var x = 0.0;
if (gn < p.n && gk < kEnd) { x = f32(B[bBase + gk * p.ldb + gn]); }
rb${l} = x;`;
    }
    return `let nrow = ${e} / ${bk}u; let kk = ${e} % ${bk}u;
let gn = n0 + nrow; let gk = k0 + kk;
var x = 0.0;
if (gn < p.n && gk < kEnd) { x = f32(B[bBase + gn * p.ldb + gk]); }
rb${l} = x;`;
  };
  const storeB = (e: string, l: number): string => {
    if (v.vecB && !v.transB) {
      return `let krow = ${e} / ${bn4}u; let nq = ${e} % ${bn4}u;
Bs[dstB + krow * ${bn4}u + nq] = rb${l};`;
    }
    if (v.vecB && v.transB) {
      return `let nrow = ${e} / ${bk / 4}u; let kq = ${e} % ${bk / 4}u;
let base = dstB + kq * ${4 * bn4}u + nrow / 4u; let lane = nrow % 4u;
Bs[base][lane] = rb${l}.x; Bs[base + ${bn4}u][lane] = rb${l}.y;
Bs[base + ${2 * bn4}u][lane] = rb${l}.z; Bs[base + ${3 * bn4}u][lane] = rb${l}.w;`;
    }
    if (!v.transB) {
      return `let krow = ${e} / ${bn}u; let nn = ${e} % ${bn}u;
Bs[dstB + krow * ${bn4}u + nn / 4u][nn % 4u] = rb${l};`;
    }
    return `let nrow = ${e} / ${bk}u; let kk = ${e} % ${bk}u;
Bs[dstB + kk * ${bn4}u + nrow / 4u][nrow % 4u] = rb${l};`;
  };

  // Invocation (tx, ty) owns rows {i*TY*4 + ty*4 + r} and columns {j*TX*4 + tx*4 + c}: neighbouring
  // invocations read neighbouring vec4s of Bs (no bank conflicts) and share As reads (broadcast).
  const accDecl: string[] = [];
  for (let r = 0; r < tm; r++)
    for (let j = 0; j < tn / 4; j++) accDecl.push(`var c${r}_${j} = vec4<f32>(0.0);`);
  const innerStep = (kk: number): string[] => {
    const out: string[] = [];
    for (let i = 0; i < tm / 4; i++) out.push(`let a${i} = As[srcA + ${kk * bm4 + i * ty}u + ty];`);
    for (let j = 0; j < tn / 4; j++) out.push(`let b${j} = Bs[srcB + ${kk * bn4 + j * tx}u + tx];`);
    for (let r = 0; r < tm; r++) {
      const a = `a${Math.floor(r / 4)}.${'xyzw'[r % 4]}`;
      for (let j = 0; j < tn / 4; j++) out.push(`c${r}_${j} = fma(vec4<f32>(${a}), b${j}, c${r}_${j});`);
    }
    return out;
  };
  const inner = Array.from({ length: bk }, (_, kk) => `{\n      ${innerStep(kk).join('\n      ')}\n    }`);
  // Epilogue through shared memory, one band of rows at a time (band i holds the rows of every
  // thread's i-th vec4 row group): threads park their accumulators there, then write C cooperatively
  // from a runtime loop with one storeC call site. Unrolled per-element stores (bounds checks, beta
  // branch) made CPU adapters (llvmpipe) take seconds to compile; this runs once per tile either way.
  const bandRows = ty * 4;
  const bandVec4s = (bandRows * bn) / 4;
  const epilogue: string[] = [];
  for (let i = 0; i < tm / 4; i++) {
    for (let r = 0; r < 4; r++)
      for (let j = 0; j < tn / 4; j++)
        epilogue.push(`Cs[(ty * 4u + ${r}u) * ${bn4}u + ${j * tx}u + tx] = c${i * 4 + r}_${j};`);
    epilogue.push(`workgroupBarrier();
  for (var e = tid; e < ${bandVec4s}u; e += ${threads}u) {
    let v = Cs[e];
    let gm = m0 + ${i * bandRows}u + e / ${bn4}u;
    let gn = n0 + (e % ${bn4}u) * 4u;
    for (var c = 0u; c < 4u; c++) {
      storeC(cBase, gm, gn + c, select(select(select(v.x, v.y, c == 1u), v.z, c == 2u), v.w, c == 3u));
    }
  }
  workgroupBarrier();`);
  }
  const regDecl = [
    ...Array.from({ length: aPer }, (_, l) => `var ra${l}: ${regA};`),
    ...Array.from({ length: bPer }, (_, l) => `var rb${l}: ${regB};`),
  ];
  const loads = `${slots(aSlots, threads, loadA)}\n${slots(bSlots, threads, loadB)}`;
  const stores = `${slots(aSlots, threads, storeA)}\n${slots(bSlots, threads, storeB)}`;
  const stageA = bk * bm4;
  const stageB = bk * bn4;

  const code = /* wgsl */ `${enables(v)}
${MATMUL_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> A: array<${aElem}>;
@group(0) @binding(1) var<storage, read> B: array<${bElem}>;
@group(0) @binding(2) var<storage, read_write> C: array<${storedC(v)}>;
${tailBindings(v)}
${storeCFunction(v.cType, v.bias, v.splitK)}

const BK = ${bk}u;
// One array: A stages at 0, B stages after them, and the C band of the epilogue over both.
var<workgroup> S: array<vec4<f32>, ${tiledSharedVec4s(v.config)}>;

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let tx = tid % ${tx}u;
  let ty = tid / ${tx}u;
  let m0 = wg.y * ${bm}u;
  let n0 = wg.x * ${bn}u;
  // Split-K: this workgroup sums K range [kBegin, kEnd) (all of K without a split).
  let split = wg.z / p.batch;
  let batch = wg.z % p.batch;
  let kBegin = split * p.kChunk;
  let kEnd = min(p.k, kBegin + p.kChunk);
  let aBase = p.offA + batch * p.strideA;
  let bBase = p.offB + batch * p.strideB;
  let cBase = p.offC + batch * p.strideC + split * p.splitStride;
  ${regDecl.join('\n  ')}
  ${accDecl.join('\n  ')}
  let numTiles = select(0u, (kEnd - kBegin + BK - 1u) / BK, kEnd > kBegin);
  if (numTiles > 0u) {
    let k0 = kBegin;
    ${loads}
    let dstA = 0u;
    let dstB = 0u;
    ${stores}
  }
  workgroupBarrier();
  for (var t = 0u; t < numTiles; t++) {
    let cur = t & 1u;
    let hasNext = t + 1u < numTiles;
    if (hasNext) {
      // Issue the next tile's global loads now; they land in registers while this tile is computed.
      let k0 = kBegin + (t + 1u) * BK;
      ${loads}
    }
    let srcA = cur * ${stageA}u;
    let srcB = cur * ${stageB}u;
    ${inner.join('\n    ')}
    if (hasNext) {
      let dstA = (1u - cur) * ${stageA}u;
      let dstB = (1u - cur) * ${stageB}u;
      ${stores}
    }
    // One barrier per tile: the stage written above was last read before the previous barrier.
    workgroupBarrier();
  }
  ${epilogue.join('\n  ')}
}
`;
  return code
    .replaceAll('As[', 'S[')
    .replaceAll('Bs[', `S[${2 * stageA}u + `)
    .replaceAll('Cs[', 'S[');
}

// ---- subgroup matrix (tensor cores) --------------------------------------------------------------------

/** One GPUSubgroupMatrixConfig shape (f16 operands, f32 result). */
export interface SubgroupMatrixShape {
  m: number;
  n: number;
  k: number;
}

export interface SubgroupTileConfig {
  /** Subgroups per workgroup along M and N. */
  sgm: number;
  sgn: number;
  /** Fragments (subgroup matrices of shape m x n) per subgroup along M and N. */
  fm: number;
  fn: number;
  /** K depth of one shared-memory stage (multiple of the matrix k). */
  bk: number;
  /** 'shared': tiles staged through workgroup memory (any shape); 'direct': fragments loaded from
   * global memory (only when M, N, K are multiples of the tile and the layout is 16-byte aligned). */
  staging: 'shared' | 'direct';
  /** Shared stages (2 = double-buffered with register prefetch). */
  stages: 1 | 2;
}

export interface SubgroupVariant extends MatmulLayout {
  shape: SubgroupMatrixShape;
  config: SubgroupTileConfig;
  subgroupSize: number;
  /** vec4<f16> global loads into shared memory (offset, ld, batch stride, contiguous extent % 4 == 0). */
  vecA: boolean;
  vecB: boolean;
  /** C may be written by subgroupMatrixStore straight to global (f32, 16-byte aligned rows). */
  directStore: boolean;
  /** Emulated subgroup matrices (tests on adapters without them). */
  emulate?: boolean;
}

// Fragment sources of the general kernel: global A/B ('direct' staging) and the shared tiles.
const GLOBAL_A: MatrixSource = { ptr: '&A', name: 'A', element: 'f16' };
const GLOBAL_B: MatrixSource = { ptr: '&B', name: 'B', element: 'f16' };
const SHARED_A: MatrixSource = { ptr: '&As', name: 'As', element: 'f16' };
const SHARED_B: MatrixSource = { ptr: '&Bs', name: 'Bs', element: 'f16' };

/** Padding (in f16 elements, 16 bytes) added to shared rows so fragment loads spread across banks. */
const SHARED_PAD = 8;

export function subgroupTile(v: Pick<SubgroupVariant, 'shape' | 'config'>): { bm: number; bn: number } {
  return { bm: v.config.sgm * v.config.fm * v.shape.m, bn: v.config.sgn * v.config.fn * v.shape.n };
}

/** Workgroup memory the subgroup-matrix kernel declares, in bytes. */
export function subgroupSharedBytes(
  v: Pick<SubgroupVariant, 'shape' | 'config' | 'transA' | 'transB'>,
): number {
  const { bm, bn } = subgroupTile(v);
  const { bk, stages, sgm, sgn, staging } = v.config;
  const scratch = sgm * sgn * v.shape.m * v.shape.n * 4;
  if (staging === 'direct') return scratch;
  const aTile = v.transA ? bk * (bm + SHARED_PAD) : bm * (bk + SHARED_PAD);
  const bTile = v.transB ? bn * (bk + SHARED_PAD) : bk * (bn + SHARED_PAD);
  return stages * (aTile + bTile) * 2 + scratch;
}

export function subgroupMatmulWgsl(v: SubgroupVariant): string {
  const { m: sm, n: sn, k: sk } = v.shape;
  const { sgm, sgn, fm, fn, bk, staging, stages } = v.config;
  if (v.aType !== 'f16' || v.bType !== 'f16') throw new Error('subgroup-matrix matmul needs f16 A and B');
  if (v.splitK) throw new Error('the general subgroup-matrix matmul kernel has no split-K variant');
  if (bk % sk) throw new Error(`subgroup-matrix matmul: bk ${bk} is not a multiple of the matrix k ${sk}`);
  const { bm, bn } = subgroupTile(v);
  const nsg = sgm * sgn;
  const threads = nsg * v.subgroupSize;
  const frag = sm * sn;
  const ops = subgroupMatrixOps(v.shape, v.emulate ?? false);

  const accDecl: string[] = [];
  for (let i = 0; i < fm; i++) for (let j = 0; j < fn; j++) accDecl.push(`var acc${i}_${j} = ${ops.zero()};`);
  const mma = (loadLeft: (i: number, kk: number) => string, loadRight: (j: number, kk: number) => string) => {
    const out: string[] = [];
    for (let kk = 0; kk < bk; kk += sk) {
      for (let i = 0; i < fm; i++) out.push(`let l${i}_${kk} = ${loadLeft(i, kk)};`);
      for (let j = 0; j < fn; j++) out.push(`let r${j}_${kk} = ${loadRight(j, kk)};`);
      for (let i = 0; i < fm; i++)
        for (let j = 0; j < fn; j++)
          out.push(`acc${i}_${j} = ${ops.mma(`l${i}_${kk}`, `r${j}_${kk}`, `acc${i}_${j}`)};`);
    }
    return out.join('\n    ');
  };

  let declarations = '';
  let body: string;
  if (staging === 'direct') {
    // Fragments straight from global memory: the host only picks this when every tile is full.
    const left = (i: number, kk: number): string => {
      const row = `fragM + ${i * sm}u`;
      const off = v.transA
        ? `aBase + (k0 + ${kk}u) * p.lda + ${row}`
        : `aBase + (${row}) * p.lda + k0 + ${kk}u`;
      return ops.left(GLOBAL_A, off, 'p.lda', v.transA);
    };
    const right = (j: number, kk: number): string => {
      const col = `fragN + ${j * sn}u`;
      const off = v.transB
        ? `bBase + (${col}) * p.ldb + k0 + ${kk}u`
        : `bBase + (k0 + ${kk}u) * p.ldb + ${col}`;
      return ops.right(GLOBAL_B, off, 'p.ldb', v.transB);
    };
    body = `
  for (var k0 = 0u; k0 < p.k; k0 += ${bk}u) {
    ${mma(left, right)}
  }`;
  } else {
    const aStride = v.transA ? bm + SHARED_PAD : bk + SHARED_PAD;
    const bStride = v.transB ? bk + SHARED_PAD : bn + SHARED_PAD;
    const aTile = v.transA ? bk * aStride : bm * aStride;
    const bTile = v.transB ? bn * bStride : bk * bStride;
    const aSlots = v.vecA ? (bm * bk) / 4 : bm * bk;
    const bSlots = v.vecB ? (bn * bk) / 4 : bn * bk;
    const aPer = Math.ceil(aSlots / threads);
    const bPer = Math.ceil(bSlots / threads);
    const zero4 = 'vec4<f16>(0.0h)';
    // Shared tiles keep the global orientation (A [BM][BK] or, transposed, [BK][BM]; likewise B), so
    // the copies stay contiguous and the fragment loads pick the majorness instead of transposing.
    const loadA = (e: string, l: number): string => {
      if (v.vecA && !v.transA)
        return `let row = ${e} / ${bk / 4}u; let kq = ${e} % ${bk / 4}u;
let gm = m0 + row; let gk = k0 + kq * 4u;
var x = ${zero4};
if (gm < p.m && gk < p.k) { x = A[(aBase + gm * p.lda + gk) / 4u]; }
ra${l} = x;`;
      if (v.vecA && v.transA)
        return `let krow = ${e} / ${bm / 4}u; let mq = ${e} % ${bm / 4}u;
let gm = m0 + mq * 4u; let gk = k0 + krow;
var x = ${zero4};
if (gm < p.m && gk < p.k) { x = A[(aBase + gk * p.lda + gm) / 4u]; }
ra${l} = x;`;
      if (!v.transA)
        return `let row = ${e} / ${bk}u; let kk = ${e} % ${bk}u;
let gm = m0 + row; let gk = k0 + kk;
var x = 0.0h;
if (gm < p.m && gk < p.k) { x = A[aBase + gm * p.lda + gk]; }
ra${l} = x;`;
      return `let krow = ${e} / ${bm}u; let mm = ${e} % ${bm}u;
let gm = m0 + mm; let gk = k0 + krow;
var x = 0.0h;
if (gm < p.m && gk < p.k) { x = A[aBase + gk * p.lda + gm]; }
ra${l} = x;`;
    };
    const storeA = (e: string, l: number): string => {
      const at = v.vecA
        ? v.transA
          ? `let krow = ${e} / ${bm / 4}u; let mq = ${e} % ${bm / 4}u; let o = dstA + krow * ${aStride}u + mq * 4u;`
          : `let row = ${e} / ${bk / 4}u; let kq = ${e} % ${bk / 4}u; let o = dstA + row * ${aStride}u + kq * 4u;`
        : v.transA
          ? `let krow = ${e} / ${bm}u; let mm = ${e} % ${bm}u; let o = dstA + krow * ${aStride}u + mm;`
          : `let row = ${e} / ${bk}u; let kk = ${e} % ${bk}u; let o = dstA + row * ${aStride}u + kk;`;
      return v.vecA
        ? `${at}\nAs[o] = ra${l}.x; As[o + 1u] = ra${l}.y; As[o + 2u] = ra${l}.z; As[o + 3u] = ra${l}.w;`
        : `${at}\nAs[o] = ra${l};`;
    };
    const loadB = (e: string, l: number): string => {
      if (v.vecB && !v.transB)
        return `let krow = ${e} / ${bn / 4}u; let nq = ${e} % ${bn / 4}u;
let gn = n0 + nq * 4u; let gk = k0 + krow;
var x = ${zero4};
if (gn < p.n && gk < p.k) { x = B[(bBase + gk * p.ldb + gn) / 4u]; }
rb${l} = x;`;
      if (v.vecB && v.transB)
        return `let nrow = ${e} / ${bk / 4}u; let kq = ${e} % ${bk / 4}u;
let gn = n0 + nrow; let gk = k0 + kq * 4u;
var x = ${zero4};
if (gn < p.n && gk < p.k) { x = B[(bBase + gn * p.ldb + gk) / 4u]; }
rb${l} = x;`;
      if (!v.transB)
        return `let krow = ${e} / ${bn}u; let nn = ${e} % ${bn}u;
let gn = n0 + nn; let gk = k0 + krow;
var x = 0.0h;
if (gn < p.n && gk < p.k) { x = B[bBase + gk * p.ldb + gn]; }
rb${l} = x;`;
      return `let nrow = ${e} / ${bk}u; let kk = ${e} % ${bk}u;
let gn = n0 + nrow; let gk = k0 + kk;
var x = 0.0h;
if (gn < p.n && gk < p.k) { x = B[bBase + gn * p.ldb + gk]; }
rb${l} = x;`;
    };
    const storeB = (e: string, l: number): string => {
      const at = v.vecB
        ? v.transB
          ? `let nrow = ${e} / ${bk / 4}u; let kq = ${e} % ${bk / 4}u; let o = dstB + nrow * ${bStride}u + kq * 4u;`
          : `let krow = ${e} / ${bn / 4}u; let nq = ${e} % ${bn / 4}u; let o = dstB + krow * ${bStride}u + nq * 4u;`
        : v.transB
          ? `let nrow = ${e} / ${bk}u; let kk = ${e} % ${bk}u; let o = dstB + nrow * ${bStride}u + kk;`
          : `let krow = ${e} / ${bn}u; let nn = ${e} % ${bn}u; let o = dstB + krow * ${bStride}u + nn;`;
      return v.vecB
        ? `${at}\nBs[o] = rb${l}.x; Bs[o + 1u] = rb${l}.y; Bs[o + 2u] = rb${l}.z; Bs[o + 3u] = rb${l}.w;`
        : `${at}\nBs[o] = rb${l};`;
    };
    const left = (i: number, kk: number): string => {
      const row = `fragM - m0 + ${i * sm}u`;
      const off = v.transA ? `srcA + ${kk * aStride}u + ${row}` : `srcA + (${row}) * ${aStride}u + ${kk}u`;
      return ops.left(SHARED_A, off, `${aStride}u`, v.transA);
    };
    const right = (j: number, kk: number): string => {
      const col = `fragN - n0 + ${j * sn}u`;
      const off = v.transB ? `srcB + (${col}) * ${bStride}u + ${kk}u` : `srcB + ${kk * bStride}u + ${col}`;
      return ops.right(SHARED_B, off, `${bStride}u`, v.transB);
    };
    const regT = (vec: boolean) => (vec ? 'vec4<f16>' : 'f16');
    const regDecl = [
      ...Array.from({ length: aPer }, (_, l) => `var ra${l}: ${regT(v.vecA)};`),
      ...Array.from({ length: bPer }, (_, l) => `var rb${l}: ${regT(v.vecB)};`),
    ].join('\n  ');
    const loads = `${slots(aSlots, threads, loadA)}\n${slots(bSlots, threads, loadB)}`;
    const stores = `${slots(aSlots, threads, storeA)}\n${slots(bSlots, threads, storeB)}`;
    declarations = `
var<workgroup> As: array<f16, ${stages * aTile}>;
var<workgroup> Bs: array<f16, ${stages * bTile}>;`;
    body =
      stages === 2
        ? `
  ${regDecl}
  let numTiles = (p.k + ${bk - 1}u) / ${bk}u;
  if (numTiles > 0u) {
    let k0 = 0u;
    ${loads}
    let dstA = 0u;
    let dstB = 0u;
    ${stores}
  }
  workgroupBarrier();
  for (var t = 0u; t < numTiles; t++) {
    let cur = t & 1u;
    let hasNext = t + 1u < numTiles;
    if (hasNext) {
      let k0 = (t + 1u) * ${bk}u;
      ${loads}
    }
    let srcA = cur * ${aTile}u;
    let srcB = cur * ${bTile}u;
    ${mma(left, right)}
    if (hasNext) {
      let dstA = (1u - cur) * ${aTile}u;
      let dstB = (1u - cur) * ${bTile}u;
      ${stores}
    }
    workgroupBarrier();
  }`
        : `
  ${regDecl}
  for (var k0 = 0u; k0 < p.k; k0 += ${bk}u) {
    ${loads}
    let dstA = 0u;
    let dstB = 0u;
    ${stores}
    workgroupBarrier();
    let srcA = 0u;
    let srcB = 0u;
    ${mma(left, right)}
    workgroupBarrier();
  }`;
  }

  // Epilogue: full f32 tiles with beta == 0 go straight to C; everything else (ragged edges, beta,
  // f16 output) goes fragment by fragment through a per-subgroup f32 scratch tile and storeC.
  const direct: string[] = [];
  const staged: string[] = [];
  for (let i = 0; i < fm; i++) {
    for (let j = 0; j < fn; j++) {
      direct.push(
        ops.store(
          { ptr: '&C', name: 'C', element: v.cType },
          `cBase + (fragM + ${i * sm}u) * p.ldc + fragN + ${j * sn}u`,
          ops.scale(`acc${i}_${j}`, 'p.alpha'),
          'p.ldc',
        ),
      );
      staged.push(`${ops.store({ ptr: '&scratch', name: 'scratch', element: 'f32' }, `sg * ${frag}u`, `acc${i}_${j}`, `${sn}u`)}
    workgroupBarrier();
    for (var e = lane; e < ${frag}u; e += sgSize) {
      storeC(cBase, fragM + ${i * sm}u + e / ${sn}u, fragN + ${j * sn}u + e % ${sn}u, scratch[sg * ${frag}u + e]);
    }
    workgroupBarrier();`);
    }
  }
  const epilogue =
    v.directStore && !v.bias
      ? `if (m0 + ${bm}u <= p.m && n0 + ${bn}u <= p.n && p.beta == 0.0) {
    ${direct.join('\n    ')}
  } else {
    ${staged.join('\n    ')}
  }`
      : staged.join('\n  ');

  return /* wgsl */ `${ops.directives}
${MATMUL_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> A: array<${staging === 'shared' && v.vecA ? 'vec4<f16>' : 'f16'}>;
@group(0) @binding(1) var<storage, read> B: array<${staging === 'shared' && v.vecB ? 'vec4<f16>' : 'f16'}>;
@group(0) @binding(2) var<storage, read_write> C: array<${v.cType}>;
${tailBindings(v)}
${storeCFunction(v.cType, v.bias)}

${declarations}
var<workgroup> scratch: array<f32, ${nsg * frag}>;
${ops.declarations()}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_size) sgSize: u32) {
  ${ops.prologue}
  let m0 = wg.y * ${bm}u;
  let n0 = wg.x * ${bn}u;
  let fragM = m0 + (sg / ${sgn}u) * ${fm * sm}u;
  let fragN = n0 + (sg % ${sgn}u) * ${fn * sn}u;
  let aBase = p.offA + wg.z * p.strideA;
  let bBase = p.offB + wg.z * p.strideB;
  let cBase = p.offC + wg.z * p.strideC;
  ${accDecl.join('\n  ')}
  ${body}
  ${epilogue}
}
`;
}

// ---- split-K reduction -------------------------------------------------------------------------------

export const SPLITK_WORKGROUP = [16, 16] as const;

/**
 * Second pass of a split-K matmul: C = alpha * (sum of the splits' partial sums, in split order) +
 * beta * C + bias, one invocation per element of C. The workspace holds `splits` blocks of `batch`
 * matrices, each M x wsLd (f32).
 */
export function splitKReduceWgsl(cType: MatmulStorageType, bias?: MatmulStorageType): string {
  const f16 = cType === 'f16' || bias === 'f16';
  return /* wgsl */ `${f16 ? 'enable f16;' : ''}
struct Params {
  m: u32, n: u32, ldc: u32, offC: u32, strideC: u32,
  alpha: f32, beta: f32,
  splits: u32, splitStride: u32, wsLd: u32, wsStride: u32,
}
@group(0) @binding(0) var<storage, read> ws: array<f32>;
@group(0) @binding(1) var<storage, read_write> C: array<${cType}>;
${
  bias
    ? `@group(0) @binding(2) var<storage, read> bias: array<${bias}>;
@group(0) @binding(3) var<uniform> p: Params;`
    : '@group(0) @binding(2) var<uniform> p: Params;'
}
${storeCFunction(cType, bias)}

@compute @workgroup_size(${SPLITK_WORKGROUP[0]}, ${SPLITK_WORKGROUP[1]})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let gn = gid.x;
  let gm = gid.y;
  let b = gid.z;
  if (gm >= p.m || gn >= p.n) { return; }
  let at = b * p.wsStride + gm * p.wsLd + gn;
  var sum = 0.0;
  for (var s = 0u; s < p.splits; s++) { sum += ws[s * p.splitStride + at]; }
  storeC(p.offC + b * p.strideC, gm, gn, sum);
}
`;
}
