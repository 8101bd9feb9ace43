// The float64 (or plain TypeScript) references every kernel is tested against, and the internal helpers
// of the kernels (uniform packing, dispatch grids, tile choices, WGSL snippets, rounding helpers), for
// tests, benchmarks and code that models the kernels' internals (the memory planner). What training needs
// is in the main entry (index.ts).

export { Params, UniformRing } from './uniforms.js';
export { grid1d } from './kernels/grid.js';
export { axpbyReference } from './kernels/axpby.js';
export {
  gatherColumnsReference,
  gatherRowsTReference,
  expandRowsReference,
  addTimesProjTReference,
  sampledRowDotsReference,
} from './kernels/sparse-projection.js';
export { csrFromDense, csrLeftReference, csrRightTReference } from './kernels/csr.js';
export {
  attentionForwardReference,
  attentionBackwardReference,
  attentionShapeOf,
  chooseAttentionTiles,
} from './kernels/attention.js';
export {
  normReference,
  normBackwardReference,
  rmsNormReference,
  rmsNormBackwardReference,
  layerNormReference,
  layerNormBackwardReference,
  normChunking,
} from './kernels/norm.js';
export { rowGrid, positionsOf } from './kernels/rows.js';
export {
  siluReference,
  siluBackwardReference,
  swigluReference,
  swigluBackwardReference,
  geluReference,
  geluBackwardReference,
  addScaledReference,
  scaleReference,
  biasAddReference,
} from './kernels/elementwise.js';
export { F16_BITS_WGSL, COUNTER_RNG_WGSL, STOCHASTIC_ADD_F16_WGSL } from './kernels/cast.wgsl.js';
export {
  castReference,
  applyDeltaReference,
  stochasticUniform,
  stochasticAddNeighbours,
} from './kernels/cast.js';
export { packScaledHalfReference, scaledHalfScale, unpackScaledHalf } from './kernels/scaled-half.js';
export { reduceReference, columnSumReference, REDUCE_VALUES_PER_THREAD } from './kernels/reduce.js';
export { adamwReference, adamwGradFactor } from './kernels/adamw.js';
export { ropeReference, ropeInvFreq, ropeTableValues } from './kernels/rope.js';
export { embeddingReference, embeddingBackwardReference } from './kernels/embedding.js';
export { crossEntropyReference, crossEntropyBackwardReference } from './kernels/cross-entropy.js';
export { copyColumnsReference } from './kernels/columns.js';
export { matmulPlan, matmulReference, chooseTiledConfig } from './kernels/matmul.js';
export { cachedAttentionReference } from './kernels/cached-attention.js';
export type { AttentionShape, AttentionLimits } from './kernels/attention.js';
export type { NormReferenceResult, NormBackwardReferenceResult } from './kernels/norm.js';
export type { RowGrid } from './kernels/rows.js';
export type { StochasticAddResult } from './kernels/cast.js';
export type { CrossEntropyReferenceResult } from './kernels/cross-entropy.js';
export type { MatmulPlan, MatmulReferenceArgs } from './kernels/matmul.js';
export { lossScaleUpdateReference } from './kernels/loss-scale.js';
