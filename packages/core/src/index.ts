export { systemInfo } from './system-info.js';
export type { SystemInfo } from './system-info.js';
export * from './hf/index.js';
export { Rng } from './util/rng.js';
export type { RngState } from './util/rng.js';
export { SparseProjector } from './projectors/sparse-projector.js';
export type { ProjectorInit } from './projectors/sparse-projector.js';
export { MomentTransfer, projectorOverlap, transferMomentsReference, zeroNonFinite } from './projectors/moment-transfer.js';
export * from './data/index.js';
