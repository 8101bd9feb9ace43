// Shared by the matmul test files: build a random strided/batched matmul case, run it on the GPU with
// poisoned outputs, and compare with the float64 reference under an error bound scaled by
// sum |alpha a b| + |beta c| per element (plus f16 rounding of the output where C is f16).
import { expect } from 'vitest';
import {
  f16Round,
  matmulStrided,
  type GpuRuntime,
  type MatmulKernelChoice,
  type MatmulPath,
  type TiledConfig,
} from '../src/index.js';
import { matmulReference, type MatmulPlan } from '../src/reference.js';
import { NAN_BITS, makeRng, randomArray } from './harness.js';

export type Float = 'f32' | 'f16';

export const LAYOUTS = [
  { transA: false, transB: false },
  { transA: false, transB: true },
  { transA: true, transB: false },
  { transA: true, transB: true },
] as const;

/** Contiguous extents all % 4 == 0 (unpadded, no offsets): the vec4 load variant applies. */
export function isAligned(cs: MatmulCase): boolean {
  return cs.m % 4 === 0 && cs.n % 4 === 0 && cs.k % 4 === 0;
}

/** Two f16 NaNs per 32-bit word (NAN_BITS would leave every even f16 element at 0.0). */
export const F16_NAN_PAIR = 0x7e007e00;

export interface MatmulCase {
  m: number;
  n: number;
  k: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  aType?: Float;
  bType?: Float;
  cType?: Float;
  alpha?: number;
  beta?: number;
  /** Extra elements per stored row (ld = row length + pad). */
  padA?: number;
  padB?: number;
  padC?: number;
  offA?: number;
  offB?: number;
  offC?: number;
  /** Extra elements between batch matrices. */
  gapA?: number;
  gapB?: number;
  gapC?: number;
  /** B is one matrix shared by the batch (batch stride 0). */
  broadcastB?: boolean;
  path?: MatmulPath | 'auto';
  tile?: TiledConfig;
  /** Further kernel choices (subgroup-matrix kernel and tile, split-K, emulation). */
  choice?: Omit<MatmulKernelChoice, 'path' | 'tile' | 'label'>;
  /** A bias of this storage type added per column. */
  bias?: Float;
  seed?: number;
}

export interface CaseResult {
  plan: MatmulPlan;
  /** Worst |got - want| / bound over all elements (<= 1 passes). */
  worst: number;
}

function round(dtype: Float, a: Float32Array): Float32Array {
  return dtype === 'f16' ? a.map(f16Round) : a;
}

/** Run one case and assert every element is within its bound; returns the plan and worst ratio. */
export async function checkMatmul(
  g: GpuRuntime,
  cs: MatmulCase,
  what = describeCase(cs),
): Promise<CaseResult> {
  const { m, n, k, transA = false, transB = false } = cs;
  const batch = cs.batch ?? 1;
  const aType = cs.aType ?? 'f32';
  const bType = cs.bType ?? 'f32';
  const cType = cs.cType ?? 'f32';
  const alpha = Math.fround(cs.alpha ?? 1);
  const beta = Math.fround(cs.beta ?? 0);
  const rng = makeRng(cs.seed ?? m * 7919 + n * 104729 + k * 1299709 + batch);
  const aRows = transA ? k : m;
  const aCols = transA ? m : k;
  const bRows = transB ? n : k;
  const bCols = transB ? k : n;
  const lda = aCols + (cs.padA ?? 0);
  const ldb = bCols + (cs.padB ?? 0);
  const ldc = n + (cs.padC ?? 0);
  const strideA = aRows * lda + (cs.gapA ?? 0);
  const strideB = cs.broadcastB ? 0 : bRows * ldb + (cs.gapB ?? 0);
  const strideC = m * ldc + (cs.gapC ?? 0);
  const offA = cs.offA ?? 0;
  const offB = cs.offB ?? 0;
  const offC = cs.offC ?? 0;
  const sizeA = offA + batch * strideA;
  const sizeB = offB + (cs.broadcastB ? 1 : batch) * Math.max(strideB, bRows * ldb);
  const sizeC = offC + batch * strideC;
  const a = round(aType, randomArray(rng, sizeA));
  const b = round(bType, randomArray(rng, sizeB));
  // With beta == 0 C starts as NaN (it must not be read); otherwise random, with NaN in every element
  // the matmul does not address (padding, gaps, offsets), which must stay untouched.
  const c0 = beta === 0 ? new Float32Array(sizeC).fill(Number.NaN) : round(cType, randomArray(rng, sizeC));
  if (beta !== 0) {
    const addressed = new Uint8Array(sizeC);
    for (let bi = 0; bi < batch; bi++)
      for (let i = 0; i < m; i++)
        addressed.fill(1, offC + bi * strideC + i * ldc, offC + bi * strideC + i * ldc + n);
    for (let i = 0; i < sizeC; i++) if (!addressed[i]) c0[i] = Number.NaN;
  }
  const bias = cs.bias ? round(cs.bias, randomArray(rng, n)) : undefined;
  const at = g.upload('A', aType, [sizeA], a);
  const bt = g.upload('B', bType, [sizeB], b);
  const ct = g.upload('C', cType, [sizeC], c0);
  const biasT = bias && g.upload('bias', cs.bias!, [n], bias);
  if (beta === 0) g.fill32(ct, cType === 'f16' ? F16_NAN_PAIR : NAN_BITS);
  const plan = matmulStrided(g, {
    m,
    n,
    k,
    batch,
    transA,
    transB,
    a: { tensor: at, offset: offA, ld: lda, batchStride: strideA },
    b: { tensor: bt, offset: offB, ld: ldb, batchStride: strideB },
    c: { tensor: ct, offset: offC, ld: ldc, batchStride: strideC },
    alpha,
    beta,
    ...(cs.path && { path: cs.path }),
    ...(cs.tile && { tile: cs.tile }),
    ...(biasT && { bias: biasT }),
    ...cs.choice,
    label: what,
  });
  const got = await g.read(ct);
  at.release();
  bt.release();
  ct.release();
  biasT?.release();
  const common = { m, n, k, batch, transA, transB, lda, ldb, ldc, strideA, strideB, strideC };
  const offsets = { offsetA: offA, offsetB: offB, offsetC: offC };
  const want = matmulReference({ ...common, ...offsets, a, b, c: c0, alpha, beta });
  // the bias is added after alpha * A.B + beta * C, to every addressed element of its column
  if (bias) {
    for (let bi = 0; bi < batch; bi++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) want[offC + bi * strideC + i * ldc + j]! += bias[j]!;
  }
  const scale = matmulReference({
    ...common,
    ...offsets,
    a: a.map(Math.abs),
    b: b.map(Math.abs),
    c: c0.map(Math.abs),
    alpha: Math.abs(alpha),
    beta: Math.abs(beta),
  });
  if (bias) {
    for (let bi = 0; bi < batch; bi++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) scale[offC + bi * strideC + i * ldc + j]! += Math.abs(bias[j]!);
  }
  const worst = compare(got, want, scale, cType, what);
  return { plan, worst };
}

/**
 * f32 accumulation of k products errs by at most ~k * 2^-24 * sum|a b|; 2^-17 covers k up to ~128
 * with margin while any indexing mistake (a wrong or missing term) is off by O(1) of that sum.
 */
const F32_SUM_TOL = 2 ** -17;

function compare(
  got: ArrayLike<number>,
  want: Float64Array,
  scale: Float64Array,
  cType: Float,
  what: string,
): number {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const gv = got[i]!;
    if (Number.isNaN(w)) {
      if (!Number.isNaN(gv)) expect.fail(`${what}: element ${i} should be untouched (NaN) but is ${gv}`);
      continue;
    }
    const bound = F32_SUM_TOL * scale[i]! + (cType === 'f16' ? 2 ** -10 * Math.abs(w) : 0) + 1e-30;
    const ratio = Math.abs(gv - w) / bound;
    if (!(ratio <= worst)) {
      worst = Number.isNaN(ratio) ? Infinity : ratio;
      worstAt = i;
    }
  }
  if (!(worst <= 1)) {
    expect.fail(
      `${what}: element ${worstAt} is ${got[worstAt]}, want ${want[worstAt]} ` +
        `(error ${worst.toPrecision(3)} x the bound; NaN means unwritten)`,
    );
  }
  return worst;
}

export function describeCase(cs: MatmulCase): string {
  const layout = `${cs.transA ? 'T' : 'N'}${cs.transB ? 'T' : 'N'}`;
  const types = `${cs.aType ?? 'f32'}.${cs.bType ?? 'f32'}->${cs.cType ?? 'f32'}`;
  const b = cs.batch && cs.batch > 1 ? ` x${cs.batch}` : '';
  return `${layout} ${types} ${cs.m}x${cs.n}x${cs.k}${b}`;
}
