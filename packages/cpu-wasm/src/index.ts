// @lsp-offload/cpu-wasm: SIMD Rust->WASM AdamW sharded across worker threads over shared memory.
export { AdamW } from './adamw.js';
export type {
  AdamWOptions,
  LrSchedule,
  NonFinitePolicy,
  ParamOptions,
  StepOnlyOptions,
  TensorOptions,
  StepOptions,
  StepReport,
  TensorInfo,
} from './adamw.js';
export type { StepTiming, TaskTiming, WorkerTiming } from './timing.js';
export { DEFAULT_HYPER_PARAMS } from './hyper.js';
export type { HyperParams } from './hyper.js';
export type { Dtype, TensorKind } from './tensors.js';
export type { SegmentViews } from './views.js';
export { NonFiniteGradientError, OptimizerDestroyedError } from './errors.js';
export type { NonFiniteReport } from './errors.js';
export {
  encodeSafetensors,
  decodeSafetensors,
  readSafetensorsHeader,
  bytesSource,
  concatBytes,
} from './safetensors.js';
export type {
  ByteSource,
  SafetensorsDtype,
  SafetensorsTensor,
  SafetensorsHeader,
  TensorEntry,
  DecodedTensor,
  DecodedSafetensors,
} from './safetensors.js';
export { openFileSource } from './file-source.js';
export type { FileSource } from './file-source.js';
export { halfToFloat, floatToHalf, toHalf, fromHalf } from './half.js';
export { wasmFeatures } from './features.js';
export type { WasmFeatures } from './features.js';
// Lower level: the kernels and the pool, for callers that manage their own memory layout.
export {
  createSharedMemory,
  instantiateKernels,
  mainThreadKernels,
  heapBase,
  compileModule,
} from './wasm.js';
export type { KernelExports } from './wasm.js';
export { KernelPool } from './pool.js';
export type { KernelPoolOptions, PoolTask, TimedResult } from './pool.js';
export { OP, PIECE_STRIDE, HYPER_STRIDE, PieceWriter } from './protocol.js';
export type { Op } from './protocol.js';
export { WORKER_STACK_BYTES } from './layout.js';
