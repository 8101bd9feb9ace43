// WGSL generator of the fast tensor-core matmul: f16 A and B, f32 accumulation, for operands whose rows
// can be read 16 bytes (8 halves) at a time (offsets, leading dimensions, batch strides and the contiguous
// extent of A and B multiples of 8). Other layouts take the general subgroup-matrix kernel in
// matmul.wgsl.ts.
//
// Per workgroup a BM x BN tile of C; SGM x SGN subgroups, each FM x FN fragments. Per K step of BK the
// workgroup copies an A and a B tile from global memory (16-byte loads into registers) into workgroup
// memory (16-byte stores through a buffer view, or 8 f16 stores without one), rows padded by 8 halves so
// fragment loads spread over the banks and stay 16-byte aligned; each subgroup then loads its FM Left
// fragments once and reuses them across its FN Right fragments. Pipelines:
//  - none:     load, store, barrier, multiply, barrier;
//  - prefetch: one shared stage; the next tile's global loads are issued right after the first barrier,
//              so they are in flight while this tile is multiplied;
//  - double:   two shared stages, one barrier per K step.
// No per-element bounds checks inside the tile: rows and columns past M or N read clamped (real) rows
// and columns whose products only reach C elements that are never stored; only the last K step (when
// the K range is not a multiple of BK) checks K, and zero-fills. Tile order can be swizzled: G tile rows
// are walked column by column, so consecutive workgroups share A and B tiles in L2. Split-K: workgroup
// y handles one K range and writes raw partial sums into an f32 workspace that splitKReduceWgsl sums.
import { MATMUL_PARAMS_WGSL, storeCFunction, type MatmulStorageType } from './matmul.wgsl.js';
import {
  BUFFER_VIEW_DIRECTIVE,
  f16Tile,
  f32Scratch,
  subgroupMatrixOps,
  type FragmentShape,
} from './subgroup-matrix.wgsl.js';

export interface TcTileConfig {
  /** Subgroups per workgroup along M and N. */
  sgm: number;
  sgn: number;
  /** Fragments per subgroup along M and N. */
  fm: number;
  fn: number;
  /** K depth of one stage (multiple of the fragment k and of 8). */
  bk: number;
  pipeline: 'none' | 'prefetch' | 'double';
  /** Fill workgroup tiles with 16-byte stores through a buffer view. */
  bufferView: boolean;
  /** Tile rows walked together (L2 reuse); 0 walks tiles row by row. */
  swizzle: number;
}

export interface TcVariant {
  transA: boolean;
  transB: boolean;
  cType: MatmulStorageType;
  /** Bias added per column in the epilogue, and its storage type. */
  bias?: MatmulStorageType;
  /** Write raw partial sums (no alpha, beta, bias) into an f32 workspace: the split-K first pass. */
  splitK: boolean;
  /** C rows are 16-byte aligned f32: full tiles may be stored straight from the fragments. */
  directStore: boolean;
  shape: FragmentShape;
  subgroupSize: number;
  config: TcTileConfig;
  /** Emulated subgroup matrices (tests on adapters without them). */
  emulate: boolean;
}

/** Padding in halves (16 bytes) of every shared row. */
const PAD = 8;

export function tcTile(v: Pick<TcVariant, 'shape' | 'config'>): { bm: number; bn: number } {
  return { bm: v.config.sgm * v.config.fm * v.shape.m, bn: v.config.sgn * v.config.fn * v.shape.n };
}

function strides(v: Pick<TcVariant, 'shape' | 'config' | 'transA' | 'transB'>) {
  const { bm, bn } = tcTile(v);
  const bk = v.config.bk;
  const aStride = v.transA ? bm + PAD : bk + PAD;
  const bStride = v.transB ? bk + PAD : bn + PAD;
  const aTile = (v.transA ? bk : bm) * aStride;
  const bTile = (v.transB ? bn : bk) * bStride;
  return { bm, bn, bk, aStride, bStride, aTile, bTile };
}

/** Workgroup memory of the kernel, in bytes. */
export function tcSharedBytes(v: Pick<TcVariant, 'shape' | 'config' | 'transA' | 'transB'>): number {
  const { aTile, bTile } = strides(v);
  const stages = v.config.pipeline === 'double' ? 2 : 1;
  const nsg = v.config.sgm * v.config.sgn;
  return stages * (aTile + bTile) * 2 + nsg * v.shape.m * v.shape.n * 4;
}

export function tcThreads(v: Pick<TcVariant, 'config' | 'subgroupSize'>): number {
  return v.config.sgm * v.config.sgn * v.subgroupSize;
}

/** Problems with a configuration, or undefined. */
export function tcConfigProblem(v: Pick<TcVariant, 'shape' | 'config'>): string | undefined {
  const c = v.config;
  for (const key of ['sgm', 'sgn', 'fm', 'fn', 'bk'] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) return `${key} must be a positive integer, got ${c[key]}`;
  }
  if (c.bk % v.shape.k || c.bk % 8)
    return `bk ${c.bk} must be a multiple of 8 and of the fragment k ${v.shape.k}`;
  if (!Number.isInteger(c.swizzle) || c.swizzle < 0) return `swizzle must be >= 0, got ${c.swizzle}`;
  return undefined;
}

export function tcMatmulWgsl(v: TcVariant): string {
  const problem = tcConfigProblem(v);
  if (problem) throw new Error(`tensor-core matmul config: ${problem}`);
  const ops = subgroupMatrixOps(v.shape, v.emulate);
  const { m: sm, n: sn, k: sk } = v.shape;
  const { sgm, sgn, fm, fn, pipeline, swizzle } = v.config;
  const { bm, bn, bk, aStride, bStride, aTile, bTile } = strides(v);
  const nsg = sgm * sgn;
  const threads = nsg * v.subgroupSize;
  const stageHalves = aTile + bTile;
  const stages = pipeline === 'double' ? 2 : 1;
  const tile = f16Tile('sm', stages * stageHalves, v.config.bufferView);
  const frag = sm * sn;
  const scratch = f32Scratch('scratch', nsg * frag);
  const cStore = v.splitK ? 'f32' : v.cType;

  // ---- global -> register loads, one 16-byte chunk per slot ----------------------------------------
  // A: [M, K] (chunks along K) or, transposed, [K, M] (chunks along M); likewise B.
  interface Operand {
    name: 'A' | 'B';
    /** Chunks along the contiguous dimension per tile row, tile rows. */
    chunksPerRow: number;
    rows: number;
    /** True when tile rows run along K (the checked dimension is the row). */
    rowsAlongK: boolean;
    sharedStride: number;
    sharedBase: number;
  }
  const opA: Operand = v.transA
    ? { name: 'A', chunksPerRow: bm / 8, rows: bk, rowsAlongK: true, sharedStride: aStride, sharedBase: 0 }
    : { name: 'A', chunksPerRow: bk / 8, rows: bm, rowsAlongK: false, sharedStride: aStride, sharedBase: 0 };
  const opB: Operand = v.transB
    ? {
        name: 'B',
        chunksPerRow: bk / 8,
        rows: bn,
        rowsAlongK: false,
        sharedStride: bStride,
        sharedBase: aTile,
      }
    : {
        name: 'B',
        chunksPerRow: bn / 8,
        rows: bk,
        rowsAlongK: true,
        sharedStride: bStride,
        sharedBase: aTile,
      };
  const lower = (o: Operand) => o.name.toLowerCase();
  const setup: string[] = [];
  const loadsUnchecked: string[] = [];
  const loadsChecked: string[] = [];
  const storesTo: string[] = [];
  const regs: string[] = [];
  for (const o of [opA, opB]) {
    const x = lower(o);
    const total = o.chunksPerRow * o.rows;
    const per = Math.ceil(total / threads);
    const ld = `p.ld${x}`;
    const base = `${x}Base`;
    // The matrix extent along the tile's non-K dimension (rows or chunk columns are clamped to it).
    const extent = o.name === 'A' ? 'p.m' : 'p.n';
    const origin = o.name === 'A' ? 'm0' : 'n0';
    for (let l = 0; l < per; l++) {
      const e = `(tid + ${l * threads}u)`;
      const guard = (l + 1) * threads > total ? `${e} < ${total}u` : '';
      const wrap = (s: string) => (guard ? `if (${guard}) { ${s} }` : s);
      const id = `${x}${l}`;
      regs.push(`var r_${id} = vec4<u32>(0u);`);
      if (o.rowsAlongK) {
        // tile row = k, chunk along the M/N dimension (clamped to the last whole chunk)
        setup.push(`let row_${id} = ${e} / ${o.chunksPerRow}u;
  let col_${id} = ${base} + min(${origin} + (${e} % ${o.chunksPerRow}u) * 8u, ${extent} - 8u);
  let dst_${id} = ${o.sharedBase}u + row_${id} * ${o.sharedStride}u + (${e} % ${o.chunksPerRow}u) * 8u;`);
        const at = `${o.name}[(col_${id} + (k0 + row_${id}) * ${ld}) >> 3u]`;
        loadsUnchecked.push(wrap(`r_${id} = ${at};`));
        loadsChecked.push(
          wrap(`if (k0 + row_${id} < kEnd) { r_${id} = ${at}; } else { r_${id} = vec4<u32>(0u); }`),
        );
      } else {
        // tile row along M/N (clamped to the last row), chunk along k
        setup.push(`let kc_${id} = (${e} % ${o.chunksPerRow}u) * 8u;
  let row_${id} = ${base} + min(${origin} + ${e} / ${o.chunksPerRow}u, ${extent} - 1u) * ${ld} + kc_${id};
  let dst_${id} = ${o.sharedBase}u + (${e} / ${o.chunksPerRow}u) * ${o.sharedStride}u + kc_${id};`);
        const at = `${o.name}[(row_${id} + k0) >> 3u]`;
        loadsUnchecked.push(wrap(`r_${id} = ${at};`));
        loadsChecked.push(
          wrap(`if (k0 + kc_${id} < kEnd) { r_${id} = ${at}; } else { r_${id} = vec4<u32>(0u); }`),
        );
      }
      storesTo.push(wrap(tile.store16(`stage + dst_${id}`, `r_${id}`)));
    }
  }
  const loads = (checked: boolean) => (checked ? loadsChecked : loadsUnchecked).join('\n    ');
  const store = (stage: string) => `{
      let stage = ${stage};
      ${storesTo.join('\n      ')}
    }`;
  /** Issue the loads of the K tile at k0 (checked when it is the partial last one). */
  const issue = (k0: string, fullTiles: string, t: string) => `{
      let k0 = ${k0};
      if (${t} < ${fullTiles}) {
        ${loads(false)}
      } else {
        ${loads(true)}
      }
    }`;

  // ---- fragments and products -----------------------------------------------------------------------
  const left = (i: number, kk: number) => {
    const row = `fragM + ${i * sm}u`;
    const off = v.transA ? `src + ${kk * aStride}u + ${row}` : `src + (${row}) * ${aStride}u + ${kk}u`;
    return ops.left(tile.src, off, `${aStride}u`, v.transA);
  };
  const right = (j: number, kk: number) => {
    const col = `fragN + ${j * sn}u`;
    const off = v.transB
      ? `src + ${aTile}u + (${col}) * ${bStride}u + ${kk}u`
      : `src + ${aTile}u + ${kk * bStride}u + ${col}`;
    return ops.right(tile.src, off, `${bStride}u`, v.transB);
  };
  const multiply = (srcExpr: string) => {
    const out: string[] = [`let src = ${srcExpr};`];
    for (let kk = 0; kk < bk; kk += sk) {
      out.push('{');
      for (let i = 0; i < fm; i++) out.push(`  let l${i} = ${left(i, kk)};`);
      for (let j = 0; j < fn; j++) out.push(`  let r${j} = ${right(j, kk)};`);
      for (let i = 0; i < fm; i++)
        for (let j = 0; j < fn; j++)
          out.push(`  acc${i}_${j} = ${ops.mma(`l${i}`, `r${j}`, `acc${i}_${j}`)};`);
      out.push('}');
    }
    return out.join('\n    ');
  };
  const accDecl: string[] = [];
  for (let i = 0; i < fm; i++) for (let j = 0; j < fn; j++) accDecl.push(`var acc${i}_${j} = ${ops.zero()};`);

  let mainLoop: string;
  if (pipeline === 'double') {
    mainLoop = `
  if (nt > 0u) {
    ${issue('kBegin', 'ntFull', '0u')}
    ${store('0u')}
  }
  workgroupBarrier();
  for (var t = 0u; t < nt; t++) {
    let cur = t & 1u;
    if (t + 1u < nt) {
      ${issue(`kBegin + (t + 1u) * ${bk}u`, 'ntFull', 't + 1u')}
    }
    ${multiply(`cur * ${stageHalves}u`)}
    if (t + 1u < nt) {
      ${store(`(1u - cur) * ${stageHalves}u`)}
    }
    // One barrier per K step: the stage written above was last read before the previous barrier.
    workgroupBarrier();
  }`;
  } else if (pipeline === 'prefetch') {
    mainLoop = `
  if (nt > 0u) {
    ${issue('kBegin', 'ntFull', '0u')}
  }
  for (var t = 0u; t < nt; t++) {
    ${store('0u')}
    workgroupBarrier();
    if (t + 1u < nt) {
      ${issue(`kBegin + (t + 1u) * ${bk}u`, 'ntFull', 't + 1u')}
    }
    ${multiply('0u')}
    workgroupBarrier();
  }`;
  } else {
    mainLoop = `
  for (var t = 0u; t < nt; t++) {
    ${issue(`kBegin + t * ${bk}u`, 'ntFull', 't')}
    ${store('0u')}
    workgroupBarrier();
    ${multiply('0u')}
    workgroupBarrier();
  }`;
  }

  // ---- epilogue ------------------------------------------------------------------------------------
  const cSrc = { ptr: '&C', name: 'C', element: cStore } as const;
  const direct: string[] = [];
  const staged: string[] = [];
  for (let i = 0; i < fm; i++) {
    for (let j = 0; j < fn; j++) {
      const value = v.splitK ? `acc${i}_${j}` : ops.scale(`acc${i}_${j}`, 'p.alpha');
      direct.push(
        ops.store(
          cSrc,
          `cBase + (m0 + fragM + ${i * sm}u) * p.ldc + n0 + fragN + ${j * sn}u`,
          value,
          'p.ldc',
        ),
      );
      staged.push(`${ops.store(scratch.src, `sg * ${frag}u`, `acc${i}_${j}`, `${sn}u`)}
  workgroupBarrier();
  for (var e = lane; e < ${frag}u; e += ${v.subgroupSize}u) {
    storeC(cBase, m0 + fragM + ${i * sm}u + e / ${sn}u, n0 + fragN + ${j * sn}u + e % ${sn}u, scratch[sg * ${frag}u + e]);
  }
  workgroupBarrier();`);
    }
  }
  const fullTile = `m0 + ${bm}u <= p.m && n0 + ${bn}u <= p.n`;
  const directWhen = v.splitK ? fullTile : `${fullTile} && p.beta == 0.0`;
  const epilogue =
    v.directStore && (v.splitK || (v.cType === 'f32' && !v.bias))
      ? `if (${directWhen}) {
    ${direct.join('\n    ')}
  } else {
    ${staged.join('\n    ')}
  }`
      : staged.join('\n  ');
  const storeFn = storeCFunction(v.cType, v.bias, v.splitK);

  // ---- tile order ------------------------------------------------------------------------------------
  const order =
    swizzle > 0
      ? `// ${swizzle} tile rows at a time, column by column: neighbours share A and B tiles in L2.
  let groupTiles = ${swizzle}u * p.tilesN;
  let firstRow = (tileIndex / groupTiles) * ${swizzle}u;
  let groupRows = min(p.tilesM - firstRow, ${swizzle}u);
  let inGroup = tileIndex % groupTiles;
  let tm = firstRow + inGroup % groupRows;
  let tn = inGroup / groupRows;`
      : `let tm = tileIndex / p.tilesN;
  let tn = tileIndex % p.tilesN;`;

  const body = `
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  ${tile.init}
  ${ops.prologue}
  let tileIndex = wg.y * p.gridX + wg.x;
  if (tileIndex >= p.tilesM * p.tilesN) { return; }
  ${order}
  let m0 = tm * ${bm}u;
  let n0 = tn * ${bn}u;
  let split = wg.z / p.batch;
  let b = wg.z % p.batch;
  let kBegin = split * p.kChunk;
  let kEnd = min(p.k, kBegin + p.kChunk);
  let kLen = select(0u, kEnd - kBegin, kEnd > kBegin);
  let nt = (kLen + ${bk - 1}u) / ${bk}u;
  let ntFull = kLen / ${bk}u;
  let aBase = p.offA + b * p.strideA;
  let bBase = p.offB + b * p.strideB;
  let cBase = p.offC + b * p.strideC + split * p.splitStride;
  let fragM = (sg / ${sgn}u) * ${fm * sm}u;
  let fragN = (sg % ${sgn}u) * ${fn * sn}u;
  ${setup.join('\n  ')}
  ${regs.join('\n  ')}
  ${accDecl.join('\n  ')}
  ${mainLoop}
  ${epilogue}
}
`;
  const binding = v.bias
    ? `@group(0) @binding(3) var<storage, read> bias: array<${v.bias}>;
@group(0) @binding(4) var<uniform> p: Params;`
    : '@group(0) @binding(3) var<uniform> p: Params;';
  return `${ops.directives}
${v.config.bufferView ? BUFFER_VIEW_DIRECTIVE : ''}
${MATMUL_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> A: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> C: array<${cStore}>;
${binding}
${storeFn}
${tile.decl}
${scratch.decl}
${ops.declarations()}
${body}`;
}
