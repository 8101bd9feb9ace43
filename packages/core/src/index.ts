export { systemInfo } from './system-info.js';
export type { SystemInfo } from './system-info.js';
export * from './hf/index.js';
export { Rng } from './util/rng.js';
export { formatBytes, formatMemorySize } from './util/format-bytes.js';
export type { RngState } from './util/rng.js';
export { SparseProjector } from './projectors/sparse-projector.js';
export type { ProjectorInit } from './projectors/sparse-projector.js';
export {
  MomentTransfer,
  projectorOverlap,
  transferMomentsReference,
  zeroNonFinite,
} from './projectors/moment-transfer.js';
export * from './model/index.js';
export * from './data/index.js';
export * from './options/index.js';
export * from './trainer/index.js';
export {
  reconstructionError,
  reconstructionErrorGradient,
  recordResidual,
  recordHalfSquaredResidualGradient,
} from './projectors/reconstruction-error.js';
export type { ResidualTensors } from './projectors/reconstruction-error.js';
export {
  reconstructionErrorReference,
  reconstructionErrorGradientReference,
} from './projectors/reconstruction-reference.js';
export type { ErrorAndGradient } from './projectors/reconstruction-reference.js';
export { evaluatePair, gradientNorms } from './projectors/pair-evaluation.js';
export type { PairEvaluation } from './projectors/pair-evaluation.js';
export { HostAdam, cosineLearningRate, DEFAULT_ADAM } from './projectors/host-adam.js';
export type { AdamSettings } from './projectors/host-adam.js';
export { learnProjectorPair, DEFAULT_LEARNING } from './projectors/projector-learning.js';
export type { LearningOptions, LearningResult } from './projectors/projector-learning.js';
export { groupLayers, projectedLayersOf } from './projectors/projector-groups.js';
export type { ProjectedLayerInfo, ProjectorGroup, ProjectorSharing } from './projectors/projector-groups.js';
export { ProjectorPair } from './projectors/projector-pair.js';
export type { ApplyOptions, PairStorage } from './projectors/projector-pair.js';
export { ProjectorSet, projectedSpecs } from './projectors/projector-set.js';
export type { ProjectorSetOptions } from './projectors/projector-set.js';
export { ProjectorRefitter } from './projectors/projector-refitter.js';
export type {
  RefitterOptions,
  HeldOutGradients,
  LayerMoments,
  MomentAccess,
  LayerRefitReport,
  GroupRefitReport,
  RefitReport,
} from './projectors/projector-refitter.js';
export { sparseProjectorTensors, readSparseProjector } from './projectors/projector-safetensors.js';
export { overwriteProjectorTensors } from './projectors/projector-overwrite.js';
export { zeroNonFiniteOnGpu } from './projectors/zero-non-finite-gpu.js';
export * from './run/index.js';
export * from './checkpoint/index.js';
export * from './planner/index.js';
export * from './report/index.js';
// The GPU runtime, for callers of core (the CLI) that create one without depending on gpu-dawn.
export { GpuRuntime, GpuContext } from '@lsp-offload/gpu-dawn';
export * from './generate/index.js';
