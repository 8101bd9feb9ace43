export { GpuContext, GpuError, requestAdapter, DAWN_TOGGLES, OPTIONAL_FEATURES } from './device.js';
export type { GpuOptions, AdapterReport } from './device.js';
export { GpuRuntime, STORAGE_USAGE } from './runtime.js';
export type { GpuRuntimeOptions, DispatchArgs, BindingLike } from './runtime.js';
export { GpuMemory, GpuMemoryError, MEMORY_CATEGORIES, sizeClass } from './memory.js';
export type { MemoryCategory, MemoryStats } from './memory.js';
export { Tensor, numelOf, storageBytes } from './tensor.js';
export type { Shape } from './tensor.js';
export { elementBlocks, elementSlices, rowBlocks, sliceElements } from './binding-blocks.js';
export type { ElementBlock, RowBlock } from './binding-blocks.js';
export { DTYPE_BYTES, f32ToF16Bits, f16BitsToF32, f16Round, toF16Array, fromF16Array } from './dtype.js';
export type { DType } from './dtype.js';
export { axpby } from './kernels/axpby.js';
export {
  buildColumnIndex,
  uploadSparseProjector,
  releaseSparseProjector,
  gatherColumns,
  gatherRowsT,
  expandRows,
  addTimesProjT,
  sampledRowDots,
  syncColumnValues,
} from './kernels/sparse-projection.js';
export type { SparseProjectorTensors, SparseProjectorHost } from './kernels/sparse-projection.js';
export { uploadCsr, releaseCsr, csrLeft, csrRightT } from './kernels/csr.js';
export type { CsrHost, CsrTensors } from './kernels/csr.js';
export { attentionForward, attentionBackward } from './kernels/attention.js';
export type {
  AttentionTiles,
  AttentionOptions,
  AttentionForwardTensors,
  AttentionBackwardTensors,
  QueryBlockTiles,
  KeyBlockTiles,
} from './kernels/attention.js';
export { DownloadRing } from './transfer/download-ring.js';
export type { DownloadOptions } from './transfer/download-ring.js';
export { UploadRing } from './transfer/upload-ring.js';
export type { UploadOptions } from './transfer/upload-ring.js';
export { StagingRing, DEFAULT_CHUNK_BYTES, DEFAULT_SLOTS } from './transfer/staging-ring.js';
export type { StagingRingOptions, StagingRingStats } from './transfer/staging-ring.js';
export { Transfer, TransferError } from './transfer/transfer.js';
export type { HostView, DeviceSide, TransferDirection } from './transfer/transfer.js';
export { HOST_COPY_METHODS, copyHostBytes } from './transfer/host-copy.js';
export type { HostCopyMethod } from './transfer/host-copy.js';
export {
  ASYNC_COPY_MIN_BYTES,
  DEFAULT_COPY_THREADS,
  NATIVE_HOST_COPY_METHODS,
} from './transfer/host-copy.js';
export { nativeHostCopyStatus } from './transfer/native-copy.js';
export { DAWN_DISABLED_TOGGLES } from './device.js';
export type { PassTimestampSource, SubmitHooks } from './runtime.js';
export { rmsNormForward, rmsNormBackward, layerNormForward, layerNormBackward } from './kernels/norm.js';
export type {
  NormKind,
  RmsNormForwardArgs,
  LayerNormForwardArgs,
  RmsNormBackwardArgs,
  LayerNormBackwardArgs,
} from './kernels/norm.js';
export type { StoredFloat, PositionRange, TokenPositions } from './kernels/rows.js';
export {
  runElementwise,
  silu,
  siluBackward,
  swiglu,
  swigluBackward,
  gelu,
  geluBackward,
  add,
  addScaled,
  scale,
  biasAdd,
} from './kernels/elementwise.js';
export type { ElementwiseArgs, ElementwiseSpec, FloatDType } from './kernels/elementwise.js';
export { cast, applyDelta } from './kernels/cast.js';
export { packScaledHalf } from './kernels/scaled-half.js';
export type { PackScaledHalfOptions } from './kernels/scaled-half.js';
export type { ApplyDeltaOptions } from './kernels/cast.js';
export {
  reduce,
  reduceSum,
  reduceSumOfSquares,
  globalNorm,
  reduceMax,
  reduceAbsMax,
  nonFiniteCount,
  columnSum,
  biasGrad,
} from './kernels/reduce.js';
export type { ReduceOp, ReduceOptions, ColumnSumOptions } from './kernels/reduce.js';
export { adamw, createAdamWState } from './kernels/adamw.js';
export type { AdamWOptions, AdamWParam, AdamWHyperparameters, AdamWMode } from './kernels/adamw.js';
export { ropeForward, ropeBackward, createRopeTable } from './kernels/rope.js';
export type { RopeArgs, RopeBackwardArgs, RopeTableOptions } from './kernels/rope.js';
export { GpuTimer, GPU_TIMING_SCHEMA } from './timing.js';
export type { GpuTimerOptions, RegionStats, GpuTimingReport, TraceEvent, TraceOptions } from './timing.js';
export { embeddingForward, embeddingBackward } from './kernels/embedding.js';
export type { EmbeddingForwardArgs, EmbeddingBackwardArgs } from './kernels/embedding.js';
export { crossEntropyForward, crossEntropyBackward, IGNORE_INDEX } from './kernels/cross-entropy.js';
export type {
  CrossEntropyOptions,
  CrossEntropyForwardArgs,
  CrossEntropyBackwardArgs,
} from './kernels/cross-entropy.js';
export { DEFAULT_HOST_COPY } from './transfer/staging-ring.js';
export { copyColumns } from './kernels/columns.js';
export type { CopyColumnsArgs } from './kernels/columns.js';
export { matmul, matmulStrided, subgroupMatrixSupport, isCpuAdapter } from './kernels/matmul.js';
export type {
  MatmulOptions,
  MatmulStridedArgs,
  MatmulOperand,
  MatmulKernelChoice,
  MatmulPath,
  SubgroupMatrixSupport,
  TiledConfig,
  SubgroupTileConfig,
  SubgroupMatrixShape,
} from './kernels/matmul.js';
export { fillNormal } from './kernels/random.js';
export { cachedAttention, appendToCache } from './kernels/cached-attention.js';
export type { CachedAttentionArgs, CachedAttentionShape } from './kernels/cached-attention.js';
export { attentionPlan } from './kernels/attention.js';
export type { AttentionTcConfig, TcQueryTiles, TcKeyTiles } from './kernels/attention.js';
export { hasBufferView, tcProfile } from './kernels/matmul.js';
export type { TcTileConfig, TcProfile } from './kernels/matmul.js';
export { createLossScaleState, updateLossScale } from './kernels/loss-scale.js';
export type { LossScaleOptions, LossScaleState, GpuScalar } from './kernels/loss-scale.js';
