// Matmul on the GPU: C = alpha * op(A) op(B) + beta * C with op = identity or transpose (read in place,
// never materialised), batched with per-operand batch strides (0 broadcasts), leading dimensions and
// element offsets (sub-matrices, per-head views), f32 or f16-stored operands with f32 accumulation.
// Three kernels (see matmul.wgsl.ts): simple (any shape), tiled (tile sizes from the adapter's limits),
// subgroup-matrix (tensor cores; f16 operands on adapters exposing chromium-experimental-subgroup-matrix).
// The float64 reference `matmulReference` sits next to them.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import {
  tcConfigProblem,
  tcMatmulWgsl,
  tcSharedBytes,
  tcThreads,
  tcTile,
  type TcTileConfig,
} from './matmul-tc.wgsl.js';
import {
  SIMPLE_WORKGROUP,
  SPLITK_WORKGROUP,
  simpleMatmulWgsl,
  splitKReduceWgsl,
  subgroupMatmulWgsl,
  subgroupSharedBytes,
  subgroupTile,
  tiledMatmulWgsl,
  tiledSharedBytes,
  tiledThreads,
  validateTiledConfig,
  type MatmulLayout,
  type MatmulStorageType,
  type SubgroupMatrixShape,
  type SubgroupTileConfig,
  type TiledConfig,
} from './matmul.wgsl.js';

export type { TiledConfig, SubgroupTileConfig, SubgroupMatrixShape } from './matmul.wgsl.js';
export type { TcTileConfig } from './matmul-tc.wgsl.js';

export type MatmulPath = 'simple' | 'tiled' | 'subgroup-matrix';

/** One operand of a strided matmul: a tensor plus where its matrices sit inside it (all in elements). */
export interface MatmulOperand {
  tensor: Tensor;
  /** Element offset of the first matrix (default 0). */
  offset?: number;
  /** Row stride ("leading dimension") of the stored matrix (default: its column count). */
  ld?: number;
  /** Distance between consecutive matrices of the batch; 0 broadcasts one matrix (default: rows x ld). */
  batchStride?: number;
}

export interface MatmulKernelChoice {
  /** 'auto' (default): subgroup-matrix for f16 A and B where available, else tiled (else simple). */
  path?: MatmulPath | 'auto';
  /** Override the tiled path's tile (tuning and tests); checked against the device limits. */
  tile?: TiledConfig;
  /**
   * Which subgroup-matrix kernel: 'fast' (rows of A and B read 16 bytes at a time: offsets, leading
   * dimensions, batch strides and contiguous extents multiples of 8), 'general' (any layout), or 'auto'
   * (default: fast where the layout allows).
   */
  subgroupKernel?: 'auto' | 'fast' | 'general';
  /** Override the fast subgroup-matrix kernel's tile (tuning and tests). */
  tcTile?: Partial<TcTileConfig>;
  /** Override the general subgroup-matrix kernel's tile (tuning and tests). */
  subgroupTile?: Partial<SubgroupTileConfig>;
  /**
   * Split the K dimension over this many workgroups (partial sums in an f32 workspace, summed in order
   * by a second pass): 'auto' (default) splits on the fast subgroup-matrix path when the output has too
   * few tiles to fill the GPU; 1 never splits. The tiled path splits only when asked.
   */
  splitK?: number | 'auto';
  /**
   * Run the subgroup-matrix kernels on emulated subgroup matrices (plain WGSL; any adapter with subgroups
   * and shader-f16). Slow: for testing the kernels' logic on adapters without tensor cores.
   */
  emulateSubgroupMatrix?: boolean;
  /** Label for errors and GPU debugging. */
  label?: string;
}

export interface MatmulStridedArgs extends MatmulKernelChoice {
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Columns of op(A) = rows of op(B). */
  k: number;
  /** Number of matrices (default 1). */
  batch?: number;
  /** A is stored [K, M] and read transposed (C = A^T.B). */
  transA?: boolean;
  /** B is stored [N, K] and read transposed (C = A.B^T). */
  transB?: boolean;
  a: MatmulOperand;
  b: MatmulOperand;
  c: MatmulOperand;
  /** Default 1 (rounded to f32). */
  alpha?: number;
  /** Default 0; 0 never reads C (it may hold garbage or NaN). */
  beta?: number;
  /** Added to every row of C in the epilogue: [N] (f32 or f16). */
  bias?: Tensor;
}

export interface MatmulOptions extends MatmulKernelChoice {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** C += alpha * op(A) op(B) (same as beta = 1). */
  accumulate?: boolean;
  /** C = alpha * op(A) op(B) + beta * C; overrides `accumulate`. */
  beta?: number;
  /** Added to every row of C in the epilogue: [N] (f32 or f16), e.g. a linear layer's bias. */
  bias?: Tensor;
}

/** What a matmul call ran (or would run). */
export interface MatmulPlan {
  path: MatmulPath;
  /** Pipeline cache key: the full kernel specialisation. */
  key: string;
  workgroups: [number, number, number];
  tile?: TiledConfig;
  /** The general subgroup-matrix kernel's tile. */
  subgroupTile?: SubgroupTileConfig & { shape: SubgroupMatrixShape; bm: number; bn: number };
  /** The fast subgroup-matrix kernel's tile. */
  tcTile?: TcTileConfig & { shape: SubgroupMatrixShape; bm: number; bn: number };
  /** Output tiles along M and N (fast subgroup-matrix kernel). */
  tiles?: [number, number];
  /** Number of K splits (1: none) and the K range per split. */
  splitK: number;
  kChunk: number;
  /** Subgroup matrices are emulated (tests). */
  emulated: boolean;
}

interface Resolved {
  m: number;
  n: number;
  k: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  a: Required<MatmulOperand>;
  b: Required<MatmulOperand>;
  c: Required<MatmulOperand>;
  alpha: number;
  beta: number;
  bias: Tensor | undefined;
  layout: MatmulLayout;
  label: string;
}

// ---- reference ------------------------------------------------------------------------------------

export interface MatmulReferenceArgs {
  m: number;
  n: number;
  k: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  /** Storage of A, B (already rounded to their storage type by the caller where that matters). */
  a: ArrayLike<number>;
  b: ArrayLike<number>;
  /** Initial C storage (read only where beta != 0); its length is the result's length. */
  c: ArrayLike<number>;
  offsetA?: number;
  offsetB?: number;
  offsetC?: number;
  lda?: number;
  ldb?: number;
  ldc?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  alpha?: number;
  beta?: number;
}

/**
 * Float64 reference of the strided batched matmul: returns a copy of C's storage with the addressed
 * matrices replaced by alpha * op(A) op(B) + beta * C (beta 0 ignores C's old values, NaN included).
 */
export function matmulReference(args: MatmulReferenceArgs): Float64Array {
  const { m, n, k, transA = false, transB = false, a, b } = args;
  const batch = args.batch ?? 1;
  const alpha = args.alpha ?? 1;
  const beta = args.beta ?? 0;
  const lda = args.lda ?? (transA ? m : k);
  const ldb = args.ldb ?? (transB ? k : n);
  const ldc = args.ldc ?? n;
  const strideA = args.strideA ?? (transA ? k : m) * lda;
  const strideB = args.strideB ?? (transB ? n : k) * ldb;
  const strideC = args.strideC ?? m * ldc;
  const offA = args.offsetA ?? 0;
  const offB = args.offsetB ?? 0;
  const offC = args.offsetC ?? 0;
  const out = Float64Array.from(args.c);
  const row = new Float64Array(n);
  for (let bi = 0; bi < batch; bi++) {
    const aBase = offA + bi * strideA;
    const bBase = offB + bi * strideB;
    const cBase = offC + bi * strideC;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let kk = 0; kk < k; kk++) {
        const av = a[aBase + (transA ? kk * lda + i : i * lda + kk)]!;
        if (transB) {
          for (let j = 0; j < n; j++) row[j]! += av * b[bBase + j * ldb + kk]!;
        } else {
          const bRow = bBase + kk * ldb;
          for (let j = 0; j < n; j++) row[j]! += av * b[bRow + j]!;
        }
      }
      for (let j = 0; j < n; j++) {
        const idx = cBase + i * ldc + j;
        out[idx] = alpha * row[j]! + (beta !== 0 ? beta * out[idx]! : 0);
      }
    }
  }
  return out;
}

// ---- host functions ---------------------------------------------------------------------------------

/** Record C = alpha * op(A) op(B) + beta * C (+ bias) over strided, batched matrices. */
export function matmulStrided(gpu: GpuRuntime, args: MatmulStridedArgs): MatmulPlan {
  const r = resolve(gpu, args);
  const plan = planFor(gpu, r, args);
  if (r.m === 0 || r.n === 0 || r.batch === 0) return plan;
  const pipeline = gpu.pipeline(plan.key, () => wgslFor(plan, r, gpu));
  const splits = plan.splitK;
  if (splits <= 1) {
    gpu.dispatch({
      label: r.label,
      pipeline,
      bindings: [r.a.tensor, r.b.tensor, r.c.tensor, ...(r.bias ? [r.bias] : [])],
      params: kernelParams(r, plan, r.c, r.alpha, r.beta, r.k, 0),
      workgroups: plan.workgroups,
    });
    return plan;
  }
  // Split-K: raw partial sums per K range into an f32 workspace, then one pass adds them in split
  // order with the epilogue (deterministic, no atomics).
  const wsLd = Math.ceil(r.n / 8) * 8;
  const wsStride = r.m * wsLd;
  const ws = gpu.scratch(`${r.label}.splitK`, 'f32', [splits * r.batch * wsStride]);
  const kChunk = plan.kChunk;
  gpu.dispatch({
    label: `${r.label}.partial`,
    pipeline,
    bindings: [r.a.tensor, r.b.tensor, ws],
    params: kernelParams(
      r,
      plan,
      { tensor: ws, offset: 0, ld: wsLd, batchStride: wsStride },
      1,
      0,
      kChunk,
      r.batch * wsStride,
    ),
    workgroups: plan.workgroups,
  });
  const [wx, wy] = SPLITK_WORKGROUP;
  const bias = r.bias?.dtype as MatmulStorageType | undefined;
  const cType = r.c.tensor.dtype as MatmulStorageType;
  gpu.dispatch({
    label: `${r.label}.reduce`,
    pipeline: gpu.pipeline(`matmul.splitk.reduce.${cType}.b${bias ?? 0}`, () =>
      splitKReduceWgsl(cType, bias),
    ),
    bindings: [ws, r.c.tensor, ...(r.bias ? [r.bias] : [])],
    params: new Params()
      .u32(r.m)
      .u32(r.n)
      .u32(r.c.ld)
      .u32(r.c.offset)
      .u32(r.c.batchStride)
      .f32(r.alpha)
      .f32(r.beta)
      .u32(splits)
      .u32(r.batch * wsStride)
      .u32(wsLd)
      .u32(wsStride),
    workgroups: [Math.ceil(r.n / wx), Math.ceil(r.m / wy), r.batch],
  });
  return plan;
}

function kernelParams(
  r: Resolved,
  plan: MatmulPlan,
  c: Required<MatmulOperand>,
  alpha: number,
  beta: number,
  kChunk: number,
  splitStride: number,
): Params {
  return new Params()
    .u32(r.m)
    .u32(r.n)
    .u32(r.k)
    .u32(r.a.ld)
    .u32(r.b.ld)
    .u32(c.ld)
    .u32(r.a.offset)
    .u32(r.b.offset)
    .u32(c.offset)
    .u32(r.a.batchStride)
    .u32(r.b.batchStride)
    .u32(c.batchStride)
    .f32(alpha)
    .f32(beta)
    .u32(r.batch)
    .u32(kChunk)
    .u32(splitStride)
    .u32(plan.tiles?.[0] ?? 0)
    .u32(plan.tiles?.[1] ?? 0)
    .u32(plan.workgroups[0]);
}

/**
 * Record C = alpha * op(A) op(B) (+ C with `accumulate`, or + beta * C) (+ bias) for contiguous row-major
 * tensors. A is [..., M, K] ([..., K, M] with transA), B is [..., K, N] ([..., N, K] with transB),
 * C is [..., M, N]. The leading (batch) dims of A and B must equal C's, or be absent (broadcast).
 */
export function matmul(
  gpu: GpuRuntime,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  options: MatmulOptions = {},
): MatmulPlan {
  const label = options.label ?? 'matmul';
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const need2d = (t: Tensor, name: string) => {
    if (t.shape.length < 2)
      throw new Error(`${label}: ${name} '${t.label}' must have rank >= 2, got [${t.shape.join(', ')}]`);
  };
  need2d(a, 'A');
  need2d(b, 'B');
  need2d(c, 'C');
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const [cr, cc] = c.shape.slice(-2) as [number, number];
  const m = transA ? ac : ar;
  const kA = transA ? ar : ac;
  const kB = transB ? bc : br;
  const n = transB ? br : bc;
  const desc = (t: Tensor, trans: boolean) =>
    `'${t.label}' [${t.shape.join(', ')}]${trans ? ' (transposed)' : ''}`;
  if (kA !== kB) {
    throw new Error(
      `${label}: inner dimensions differ: A ${desc(a, transA)} has K=${kA}, B ${desc(b, transB)} has K=${kB}`,
    );
  }
  if (cr !== m || cc !== n) {
    throw new Error(
      `${label}: C '${c.label}' is [${c.shape.join(', ')}] but op(A) op(B) is ${m} x ${n} ` +
        `(A ${desc(a, transA)}, B ${desc(b, transB)})`,
    );
  }
  const batchDims = c.shape.slice(0, -2);
  const batch = batchDims.reduce((x, y) => x * y, 1);
  const batchStrideOf = (t: Tensor, name: string): number => {
    const dims = t.shape.slice(0, -2);
    if (dims.length === 0) return 0; // one matrix shared by the whole batch
    if (dims.length !== batchDims.length || dims.some((d, i) => d !== batchDims[i])) {
      throw new Error(
        `${label}: batch dims of ${name} '${t.label}' [${dims.join(', ')}] differ from C's [${batchDims.join(', ')}]`,
      );
    }
    return t.shape.at(-2)! * t.shape.at(-1)!;
  };
  const beta = options.beta ?? (options.accumulate ? 1 : 0);
  const { transA: _ta, transB: _tb, accumulate: _acc, beta: _beta, ...rest } = options;
  return matmulStrided(gpu, {
    ...rest,
    m,
    n,
    k: kA,
    batch,
    transA,
    transB,
    a: { tensor: a, batchStride: batchStrideOf(a, 'A') },
    b: { tensor: b, batchStride: batchStrideOf(b, 'B') },
    c: { tensor: c, batchStride: m * n },
    beta,
    label,
  });
}

/** The kernel a call would run, without recording anything (tests, benchmarks, planning). */
export function matmulPlan(gpu: GpuRuntime, args: MatmulStridedArgs): MatmulPlan {
  return planFor(gpu, resolve(gpu, args), args);
}

// ---- validation -------------------------------------------------------------------------------------

function resolve(gpu: GpuRuntime, args: MatmulStridedArgs): Resolved {
  const label = args.label ?? 'matmul';
  const { m, n, k } = args;
  const batch = args.batch ?? 1;
  const transA = args.transA ?? false;
  const transB = args.transB ?? false;
  for (const [name, v] of Object.entries({ m, n, k, batch })) {
    if (!Number.isInteger(v) || v < 0)
      throw new Error(`${label}: ${name} must be a non-negative integer, got ${v}`);
  }
  const operand = (
    name: 'A' | 'B' | 'C',
    o: MatmulOperand,
    rows: number,
    cols: number,
  ): Required<MatmulOperand> => {
    const t = o.tensor;
    if (t.dtype !== 'f32' && t.dtype !== 'f16') {
      throw new Error(`${label}: ${name} '${t.label}' is ${t.dtype}; matmul takes f32 or f16 tensors`);
    }
    if (t.dtype === 'f16' && !gpu.has('shader-f16')) {
      throw new Error(`${label}: ${name} '${t.label}' is f16 but the device lacks the 'shader-f16' feature`);
    }
    const offset = o.offset ?? 0;
    const ld = o.ld ?? cols;
    const batchStride = o.batchStride ?? rows * ld;
    for (const [what, v] of Object.entries({ offset, ld, batchStride })) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
        throw new Error(`${label}: ${name} '${t.label}' ${what} must be a u32, got ${v}`);
    }
    if (ld < cols) {
      throw new Error(`${label}: ${name} '${t.label}' ld ${ld} is less than its stored row length ${cols}`);
    }
    if (rows > 0 && cols > 0 && batch > 0) {
      const last = offset + (batch - 1) * batchStride + (rows - 1) * ld + cols - 1;
      if (last >= t.numel) {
        throw new Error(
          `${label}: ${name} '${t.label}' [${t.shape.join(', ')}] has ${t.numel} elements but the ` +
            `${batch} x ${rows} x ${cols} matrices (offset ${offset}, ld ${ld}, batch stride ${batchStride}) ` +
            `reach element ${last}`,
        );
      }
    }
    return { tensor: t, offset, ld, batchStride };
  };
  const a = operand('A', args.a, transA ? k : m, transA ? m : k);
  const b = operand('B', args.b, transB ? n : k, transB ? k : n);
  const c = operand('C', args.c, m, n);
  if (c.tensor.buffer === a.tensor.buffer || c.tensor.buffer === b.tensor.buffer) {
    throw new Error(
      `${label}: C '${c.tensor.label}' shares its buffer with ${c.tensor.buffer === a.tensor.buffer ? 'A' : 'B'}; ` +
        'WebGPU cannot bind a buffer as both read-only and writable storage in one dispatch',
    );
  }
  if (c.batchStride === 0 && batch > 1) {
    throw new Error(`${label}: C '${c.tensor.label}' batch stride 0 would make the batch race on one output`);
  }
  const alpha = Math.fround(args.alpha ?? 1);
  const beta = Math.fround(args.beta ?? 0);
  const bias = args.bias;
  if (bias) {
    if ((bias.dtype !== 'f32' && bias.dtype !== 'f16') || bias.numel !== n) {
      throw new Error(
        `${label}: bias '${bias.label}' must be f32 or f16 with N = ${n} elements, got ${bias.dtype} [${bias.shape.join(', ')}]`,
      );
    }
    if (bias.dtype === 'f16' && !gpu.has('shader-f16'))
      throw new Error(`${label}: bias '${bias.label}' is f16 but the device lacks the 'shader-f16' feature`);
    if (bias.buffer === c.tensor.buffer)
      throw new Error(`${label}: bias '${bias.label}' shares its buffer with C '${c.tensor.label}'`);
  }
  const layout: MatmulLayout = {
    transA,
    transB,
    aType: a.tensor.dtype as MatmulStorageType,
    bType: b.tensor.dtype as MatmulStorageType,
    cType: c.tensor.dtype as MatmulStorageType,
    ...(bias && { bias: bias.dtype as MatmulStorageType }),
  };
  return { m, n, k, batch, transA, transB, a, b, c, alpha, beta, bias, layout, label };
}

// ---- kernel choice ----------------------------------------------------------------------------------

/** Tiles for the tiled path, best first; the first one the device's limits allow is used. */
// Measured on the H200 (bench/matmul.mjs --tune, 2026-11-29): 128 x 64 beat 128 x 128 on two of three
// LLaMA shapes (by 10-30%); BK 32 and 8 x 4 register blocks were slower.
const TILED_CANDIDATES: readonly TiledConfig[] = [
  { bm: 128, bn: 64, bk: 16, tm: 8, tn: 8 },
  { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 },
  { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
  { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
  { bm: 64, bn: 64, bk: 8, tm: 4, tn: 4 },
  { bm: 32, bn: 32, bk: 8, tm: 4, tn: 4 },
];

/** Below this many large output tiles the GPU would idle: use 64 x 64 tiles instead. */
const MIN_LARGE_TILES = 256;

function fitsLimits(gpu: GpuRuntime, threads: number, sharedBytes: number): boolean {
  const l = gpu.device.limits;
  return (
    threads <= l.maxComputeInvocationsPerWorkgroup &&
    threads <= l.maxComputeWorkgroupSizeX &&
    sharedBytes <= l.maxComputeWorkgroupStorageSize
  );
}

/** CPU implementations of WebGPU: big tiles buy nothing there and take seconds to compile. */
export function isCpuAdapter(gpu: GpuRuntime): boolean {
  const r = gpu.ctx.report;
  return /llvmpipe|lavapipe|swiftshader|softpipe/i.test(`${r.description} ${r.device} ${r.architecture}`);
}

/** The tiled path's tile for this device and problem size. */
export function chooseTiledConfig(
  gpu: GpuRuntime,
  m: number,
  n: number,
  batch: number,
): TiledConfig | undefined {
  const fitting = TILED_CANDIDATES.filter((c) => fitsLimits(gpu, tiledThreads(c), tiledSharedBytes(c)));
  if (fitting.length === 0) return undefined;
  if (isCpuAdapter(gpu)) return fitting.at(-1);
  const large = fitting[0]!;
  const tiles = Math.ceil(m / large.bm) * Math.ceil(n / large.bn) * batch;
  if (tiles < MIN_LARGE_TILES) return fitting.find((c) => c.bm <= 64) ?? large;
  return large;
}

interface AdapterWithMatrixConfigs {
  info: GPUAdapterInfo & {
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
    subgroupMatrixConfigs?: readonly {
      componentType: string;
      resultComponentType: string;
      M: number;
      N: number;
      K: number;
    }[];
  };
}

export interface SubgroupMatrixSupport {
  shape: SubgroupMatrixShape;
  subgroupSize: number;
  /** Emulated in plain WGSL (tests), not the adapter's own subgroup matrices. */
  emulated?: boolean;
}

/** The adapter's fixed subgroup size, or why it has none. */
function fixedSubgroupSize(gpu: GpuRuntime): number | string {
  const info = (gpu.ctx.adapter as unknown as AdapterWithMatrixConfigs).info;
  const min = info.subgroupMinSize;
  const max = info.subgroupMaxSize;
  if (!min || min !== max) return `the subgroup size is not fixed (${min}..${max})`;
  return max;
}

/**
 * The f16 x f16 -> f32 subgroup-matrix shape to use, or why there is none. Needs the feature, a fixed
 * subgroup size (the kernel assigns fragments per subgroup) and an f16/f32 config. With `emulate`, a
 * 16 x 16 x 16 shape emulated in plain WGSL on any adapter with subgroups and shader-f16 (tests).
 */
export function subgroupMatrixSupport(gpu: GpuRuntime, emulate = false): SubgroupMatrixSupport | string {
  if (!gpu.has('shader-f16')) return "the device lacks 'shader-f16'";
  if (!gpu.has('subgroups')) return "the device lacks 'subgroups'";
  const size = fixedSubgroupSize(gpu);
  if (typeof size === 'string') return size;
  if (emulate) return { shape: { m: 16, n: 16, k: 16 }, subgroupSize: size, emulated: true };
  if (!gpu.has('chromium-experimental-subgroup-matrix' as GPUFeatureName))
    return "the device lacks 'chromium-experimental-subgroup-matrix'";
  const info = (gpu.ctx.adapter as unknown as AdapterWithMatrixConfigs).info;
  const configs = [...(info.subgroupMatrixConfigs ?? [])].filter(
    (c) => c.componentType === 'f16' && c.resultComponentType === 'f32',
  );
  if (configs.length === 0) return 'the adapter lists no f16 -> f32 subgroup matrix config';
  // The largest fragment per instruction amortises loads best; 16x16x16 where offered.
  configs.sort((x, y) => y.M * y.N * y.K - x.M * x.N * x.K);
  const c = configs[0]!;
  return { shape: { m: c.M, n: c.N, k: c.K }, subgroupSize: size };
}

/** Does the Dawn instance accept WGSL buffer views (16-byte stores into f16 workgroup tiles)? */
export function hasBufferView(gpu: GpuRuntime): boolean {
  return gpu.ctx.report.wgslLanguageFeatures.includes('buffer_view');
}

// Default of the general subgroup-matrix kernel, measured on the H200 (bench/matmul.mjs --tune,
// 2026-11-29): 8 subgroups, each owning 4 x 4 fragments (64 x 64 of C), one shared stage:
// 94-115 TFLOP/s f16 on LLaMA-7B shapes without Dawn's robustness transform, 72-85 with it.
// 'direct' fragment loads from global memory measured 50-107 without robustness and 10-92 (erratic)
// with it, so they are only used when asked for.
const DEFAULT_SUBGROUP_TILE: SubgroupTileConfig = {
  sgm: 2,
  sgn: 4,
  fm: 4,
  fn: 4,
  bk: 32,
  staging: 'shared',
  stages: 1,
};

/**
 * The fast subgroup-matrix kernel's configuration for one adapter: the tile for problems with enough
 * output tiles, a smaller one below `minTiles`, and split-K when even that leaves the GPU idle.
 */
export interface TcProfile {
  name: string;
  matches(gpu: GpuRuntime): boolean;
  large: TcTileConfig;
  small: TcTileConfig;
  /** Workgroups that fill the GPU (about 2 per compute unit): fewer large tiles use the small tile. */
  minTiles: number;
  /** Most K splits; a split covers at least this many K steps of the tile. */
  maxSplits: number;
  minStepsPerSplit: number;
}

// Chosen on the H200 from bench/tc-tune.mjs (2026-12-03, see the README): 128 x 256 tiles of 8 subgroups
// (64 x 64 each), K depth 16, two stages, buffer-view tiles, 8 tile rows per swizzle group; problems
// with fewer than one wave of those tiles (132 compute units) take 64 x 128 tiles of 4 subgroups, and
// split K only if even those are fewer than a wave.
const TC_PROFILES: readonly TcProfile[] = [
  {
    name: 'nvidia',
    matches: (gpu) => /nvidia/i.test(`${gpu.ctx.report.vendor} ${gpu.ctx.report.description}`),
    large: { sgm: 2, sgn: 4, fm: 4, fn: 4, bk: 16, pipeline: 'double', bufferView: true, swizzle: 8 },
    small: { sgm: 2, sgn: 2, fm: 2, fn: 4, bk: 32, pipeline: 'double', bufferView: true, swizzle: 8 },
    minTiles: 132,
    maxSplits: 8,
    minStepsPerSplit: 8,
  },
];

/** Any other adapter (and the emulation in tests): small tiles that fit 16 KiB of workgroup memory. */
const DEFAULT_TC_PROFILE: TcProfile = {
  name: 'default',
  matches: () => true,
  large: { sgm: 2, sgn: 2, fm: 2, fn: 2, bk: 32, pipeline: 'double', bufferView: true, swizzle: 8 },
  small: { sgm: 2, sgn: 2, fm: 1, fn: 2, bk: 16, pipeline: 'double', bufferView: true, swizzle: 0 },
  minTiles: 64,
  maxSplits: 4,
  minStepsPerSplit: 4,
};

export function tcProfile(gpu: GpuRuntime, emulated = false): TcProfile {
  if (emulated) return DEFAULT_TC_PROFILE;
  return TC_PROFILES.find((p) => p.matches(gpu)) ?? DEFAULT_TC_PROFILE;
}

function chooseSubgroupTile(
  gpu: GpuRuntime,
  r: Resolved,
  support: SubgroupMatrixSupport,
  override: Partial<SubgroupTileConfig> | undefined,
): SubgroupTileConfig {
  let config: SubgroupTileConfig = { ...DEFAULT_SUBGROUP_TILE, ...override };
  const shape = support.shape;
  config.bk = Math.max(shape.k, Math.ceil(config.bk / shape.k) * shape.k);
  const { bm, bn } = subgroupTile({ shape, config });
  if (config.staging === 'direct' && !directLoadsOk(r, bm, bn, config.bk)) {
    if (override?.staging === 'direct') {
      throw new Error(
        `${r.label}: subgroup-matrix 'direct' staging needs M, N, K multiples of ${bm}, ${bn}, ${config.bk} ` +
          'and 16-byte aligned offsets, leading dimensions and batch strides',
      );
    }
    config = { ...config, staging: 'shared' };
  }
  const threads = () => config.sgm * config.sgn * support.subgroupSize;
  const bytes = () => subgroupSharedBytes({ shape, config, transA: r.transA, transB: r.transB });
  if (!fitsLimits(gpu, threads(), bytes()) && config.stages === 2) config = { ...config, stages: 1 };
  // Adapters with less workgroup memory (or the emulation on CPU adapters): smaller tiles.
  for (const [fm, fn] of override
    ? []
    : [
        [2, 2],
        [1, 1],
      ]) {
    if (fitsLimits(gpu, threads(), bytes())) break;
    config = { ...config, sgn: 2, fm: fm!, fn: fn! };
  }
  if (!fitsLimits(gpu, threads(), bytes())) {
    throw new Error(
      `${r.label}: subgroup-matrix tile ${JSON.stringify(config)} needs ${threads()} invocations and ${bytes()} ` +
        `bytes of workgroup memory, over the device's limits`,
    );
  }
  return config;
}

/** Fragments can be loaded straight from global memory: full tiles and 16-byte aligned rows. */
function directLoadsOk(r: Resolved, bm: number, bn: number, bk: number): boolean {
  const aligned8 = (o: Required<MatmulOperand>) =>
    o.offset % 8 === 0 && o.ld % 8 === 0 && o.batchStride % 8 === 0;
  return r.m % bm === 0 && r.n % bn === 0 && r.k % bk === 0 && aligned8(r.a) && aligned8(r.b);
}

/** vec4 loads along an operand's contiguous dimension are possible when every vec4 is in or out whole. */
function vec4Ok(o: Required<MatmulOperand>, contiguousExtent: number): boolean {
  return o.offset % 4 === 0 && o.ld % 4 === 0 && o.batchStride % 4 === 0 && contiguousExtent % 4 === 0;
}

/** 16-byte (8-half) loads along the contiguous dimension: the fast subgroup-matrix kernel's condition. */
function vec8Ok(o: Required<MatmulOperand>, contiguousExtent: number): boolean {
  return o.offset % 8 === 0 && o.ld % 8 === 0 && o.batchStride % 8 === 0 && contiguousExtent % 8 === 0;
}

/** Why the fast kernel cannot run this call, or undefined. */
function fastKernelProblem(r: Resolved): string | undefined {
  if (!vec8Ok(r.a, r.transA ? r.m : r.k))
    return `A '${r.a.tensor.label}' rows are not 16-byte aligned (offset, ld, batch stride and ${r.transA ? 'M' : 'K'} must be multiples of 8)`;
  if (!vec8Ok(r.b, r.transB ? r.k : r.n))
    return `B '${r.b.tensor.label}' rows are not 16-byte aligned (offset, ld, batch stride and ${r.transB ? 'K' : 'N'} must be multiples of 8)`;
  return undefined;
}

function chooseTcTile(
  gpu: GpuRuntime,
  r: Resolved,
  support: SubgroupMatrixSupport,
  choice: MatmulKernelChoice,
): { config: TcTileConfig; splits: number; kChunk: number } {
  const profile = tcProfile(gpu, support.emulated);
  const shape = support.shape;
  const tilesOf = (c: TcTileConfig) => {
    const { bm, bn } = tcTile({ shape, config: c });
    return Math.ceil(r.m / bm) * Math.ceil(r.n / bn) * r.batch;
  };
  let config: TcTileConfig = { ...profile.large, ...choice.tcTile };
  if (!choice.tcTile && tilesOf(profile.large) < profile.minTiles) config = { ...profile.small };
  if (config.bufferView && !hasBufferView(gpu)) {
    if (choice.tcTile?.bufferView) throw new Error(`${r.label}: this Dawn has no WGSL 'buffer_view'`);
    config = { ...config, bufferView: false };
  }
  const problem = tcConfigProblem({ shape, config });
  if (problem) throw new Error(`${r.label}: tensor-core tile ${JSON.stringify(config)}: ${problem}`);
  const variant = { shape, config, transA: r.transA, transB: r.transB, subgroupSize: support.subgroupSize };
  if (!fitsLimits(gpu, tcThreads(variant), tcSharedBytes(variant)) && config.pipeline === 'double') {
    config = { ...config, pipeline: 'prefetch' };
  }
  const fixed = { ...variant, config };
  if (!fitsLimits(gpu, tcThreads(fixed), tcSharedBytes(fixed))) {
    throw new Error(
      `${r.label}: tensor-core tile ${JSON.stringify(config)} needs ${tcThreads(fixed)} invocations and ` +
        `${tcSharedBytes(fixed)} bytes of workgroup memory, over the device's limits`,
    );
  }
  const steps = Math.ceil(r.k / config.bk);
  let splits: number;
  if (choice.splitK === undefined || choice.splitK === 'auto') {
    const tiles = tilesOf(config);
    splits =
      tiles >= profile.minTiles
        ? 1
        : Math.max(
            1,
            Math.min(
              profile.maxSplits,
              Math.ceil(profile.minTiles / tiles),
              Math.floor(steps / profile.minStepsPerSplit),
            ),
          );
  } else {
    splits = choice.splitK;
  }
  return { config, ...splitRanges(r, splits, config.bk) };
}

/** K ranges of `splits` parts, each a multiple of the tile's K depth (fewer parts if K is short). */
function splitRanges(r: Resolved, requested: number, bk: number): { splits: number; kChunk: number } {
  if (!Number.isInteger(requested) || requested < 1)
    throw new Error(`${r.label}: splitK must be a positive integer or 'auto', got ${requested}`);
  if (requested <= 1 || r.k === 0) return { splits: 1, kChunk: Math.max(r.k, 1) };
  const kChunk = Math.ceil(Math.ceil(r.k / requested) / bk) * bk;
  const splits = Math.ceil(r.k / kChunk);
  return splits > 1 ? { splits, kChunk } : { splits: 1, kChunk: Math.max(r.k, 1) };
}

function planFor(gpu: GpuRuntime, r: Resolved, choice: MatmulKernelChoice): MatmulPlan {
  const requested = choice.path ?? 'auto';
  const { m, n, batch, layout } = r;
  const tag =
    `${r.transA ? 'T' : 'N'}${r.transB ? 'T' : 'N'}.${layout.aType}${layout.bType}${layout.cType}` +
    `.b${layout.bias ?? 0}`;
  const maxGroups = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  const grid = (bm: number, bn: number, z: number): [number, number, number] => {
    const g: [number, number, number] = [Math.ceil(n / bn), Math.ceil(m / bm), z];
    if (g.some((x) => x > maxGroups))
      throw new Error(
        `${r.label}: ${m} x ${n} x batch ${batch} needs a [${g.join(', ')}] grid, over ${maxGroups}`,
      );
    return g;
  };
  const vecA = vec4Ok(r.a, r.transA ? m : r.k);
  const vecB = vec4Ok(r.b, r.transB ? r.k : n);
  const emulate = choice.emulateSubgroupMatrix ?? false;
  const base = { splitK: 1, kChunk: Math.max(r.k, 1), emulated: false };

  const wantSubgroup =
    requested === 'subgroup-matrix' ||
    (requested === 'auto' && layout.aType === 'f16' && layout.bType === 'f16');
  if (wantSubgroup) {
    const support = subgroupMatrixSupport(gpu, emulate);
    if (typeof support === 'string') {
      if (requested === 'subgroup-matrix' || emulate)
        throw new Error(`${r.label}: the subgroup-matrix path is unavailable: ${support}`);
    } else {
      if (layout.aType !== 'f16' || layout.bType !== 'f16') {
        throw new Error(
          `${r.label}: the subgroup-matrix path needs f16 A and B, got ${layout.aType} and ${layout.bType}`,
        );
      }
      const s = support.shape;
      const which = choice.subgroupKernel ?? 'auto';
      const fastProblem = fastKernelProblem(r);
      if (which === 'fast' && fastProblem)
        throw new Error(`${r.label}: the fast subgroup-matrix kernel: ${fastProblem}`);
      const emu = support.emulated ? '.emu' : '';
      if (which !== 'general' && !fastProblem) {
        const { config, splits, kChunk } = chooseTcTile(gpu, r, support, choice);
        const { bm, bn } = tcTile({ shape: s, config });
        const tiles: [number, number] = [Math.ceil(m / bm), Math.ceil(n / bn)];
        const count = tiles[0] * tiles[1];
        const gridX = Math.min(count, maxGroups);
        const z = splits * batch;
        if (z > maxGroups || Math.ceil(count / gridX) > maxGroups)
          throw new Error(`${r.label}: ${m} x ${n} x batch ${batch} x ${splits} splits is too large a grid`);
        const split = splits > 1;
        const cAligned = r.c.offset % 4 === 0 && r.c.ld % 4 === 0 && r.c.batchStride % 4 === 0;
        // Dawn requires a binding that fragment stores write to hold at least one f32 fragment.
        const fragmentBytes = s.m * s.n * 4;
        const wsBytes = splits * batch * m * Math.ceil(n / 8) * 8 * 4;
        const directStore = split
          ? wsBytes >= fragmentBytes
          : layout.cType === 'f32' && cAligned && r.c.tensor.bindingSize >= fragmentBytes;
        const key =
          `matmul.tc.${s.m}x${s.n}x${s.k}.${config.sgm}x${config.sgn}.${config.fm}x${config.fn}.bk${config.bk}` +
          `.${config.pipeline}.bv${+config.bufferView}.sw${config.swizzle}.sg${support.subgroupSize}.${tag}` +
          `.ds${+directStore}.split${+split}${emu}`;
        return {
          path: 'subgroup-matrix',
          key,
          workgroups: [gridX, Math.ceil(count / gridX), z],
          tcTile: { ...config, shape: s, bm, bn },
          tiles,
          splitK: splits,
          kChunk,
          emulated: !!support.emulated,
        };
      }
      const config = chooseSubgroupTile(gpu, r, support, choice.subgroupTile);
      const { bm, bn } = subgroupTile({ shape: s, config });
      const directStore =
        layout.cType === 'f32' &&
        r.c.offset % 4 === 0 &&
        r.c.ld % 4 === 0 &&
        r.c.batchStride % 4 === 0 &&
        r.c.tensor.bindingSize >= s.m * s.n * 4;
      const key =
        `matmul.sgmat.${s.m}x${s.n}x${s.k}.${config.sgm}x${config.sgn}.${config.fm}x${config.fn}.bk${config.bk}` +
        `.${config.staging}${config.stages}.sg${support.subgroupSize}.${tag}.v${+vecA}${+vecB}.ds${+directStore}${emu}`;
      return {
        path: 'subgroup-matrix',
        key,
        workgroups: grid(bm, bn, batch),
        subgroupTile: { ...config, shape: s, bm, bn },
        ...base,
        emulated: !!support.emulated,
      };
    }
  }
  if (requested === 'tiled' || requested === 'auto') {
    let tile = choice.tile;
    if (tile) {
      const problem = validateTiledConfig(tile);
      if (problem) throw new Error(`${r.label}: tile ${JSON.stringify(tile)}: ${problem}`);
      if (!fitsLimits(gpu, tiledThreads(tile), tiledSharedBytes(tile)))
        throw new Error(`${r.label}: tile ${JSON.stringify(tile)} exceeds the device's workgroup limits`);
    } else {
      tile = chooseTiledConfig(gpu, m, n, batch);
    }
    if (tile) {
      const wanted = typeof choice.splitK === 'number' ? choice.splitK : 1;
      const { splits, kChunk } = splitRanges(r, wanted, tile.bk);
      const split = splits > 1;
      const key = `matmul.tiled.${tile.bm}x${tile.bn}x${tile.bk}.${tile.tm}x${tile.tn}.${tag}.split${+split}.v${+vecA}${+vecB}`;
      return {
        path: 'tiled',
        key,
        workgroups: grid(tile.bm, tile.bn, batch * splits),
        tile,
        splitK: splits,
        kChunk,
        emulated: false,
      };
    }
    if (requested === 'tiled')
      throw new Error(`${r.label}: no tiled matmul configuration fits the device's limits`);
  }
  const [wx, wy] = SIMPLE_WORKGROUP;
  const g: [number, number, number] = [Math.ceil(n / wx), Math.ceil(m / wy), batch];
  if (g.some((x) => x > maxGroups))
    throw new Error(
      `${r.label}: ${m} x ${n} x batch ${batch} needs a [${g.join(', ')}] grid, over ${maxGroups}`,
    );
  return { path: 'simple', key: `matmul.simple.${tag}`, workgroups: g, ...base };
}

function wgslFor(plan: MatmulPlan, r: Resolved, gpu: GpuRuntime): string {
  const vecA = vec4Ok(r.a, r.transA ? r.m : r.k);
  const vecB = vec4Ok(r.b, r.transB ? r.k : r.n);
  const splitK = plan.splitK > 1;
  // The split-K first pass writes raw partial sums; the bias goes in with the reduction.
  const { bias: _bias, ...unbiased } = r.layout;
  const layout: MatmulLayout = splitK ? { ...unbiased, splitK } : r.layout;
  switch (plan.path) {
    case 'simple':
      return simpleMatmulWgsl(layout);
    case 'tiled':
      return tiledMatmulWgsl({ ...layout, config: plan.tile!, vecA, vecB });
    case 'subgroup-matrix': {
      const support = subgroupMatrixSupport(gpu, plan.emulated) as SubgroupMatrixSupport;
      if (plan.tcTile) {
        const { shape, bm: _bm, bn: _bn, ...config } = plan.tcTile;
        return tcMatmulWgsl({
          transA: r.transA,
          transB: r.transB,
          cType: r.layout.cType,
          ...(layout.bias && { bias: layout.bias }),
          splitK,
          directStore: plan.key.includes('.ds1'),
          shape,
          subgroupSize: support.subgroupSize,
          config,
          emulate: plan.emulated,
        });
      }
      const { shape, bm: _bm, bn: _bn, ...config } = plan.subgroupTile!;
      return subgroupMatmulWgsl({
        ...layout,
        shape,
        config,
        subgroupSize: support.subgroupSize,
        vecA,
        vecB,
        directStore: plan.key.includes('.ds1'),
        emulate: plan.emulated,
      });
    }
  }
}
