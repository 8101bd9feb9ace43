export { ModelWeights } from './weights.js';
export type { WeightDtype } from './weights.js';
export { Transformer, shiftLabels } from './transformer.js';
export type {
  TransformerOptions,
  TokenBatch,
  StepHooks,
  LossResult,
  BackwardOptions,
} from './transformer.js';
export { PRECISIONS, defaultPrecision, operandDtype, resolvePrecision } from './precision.js';
export type { Precision, PrecisionFlag } from './precision.js';
export type { GradientSink, GradTarget } from './gradient-sink.js';
export { DenseGradients } from './dense-gradients.js';
export { linearForward, linearBackwardInput, linearWeightGradient, storedSides } from './linear.js';
export { computeGradients, readTokenBatch, writeGradsFile } from './grads.js';
export type { GradsOptions, GradsResult } from './grads.js';
export { DEMO_MODEL_CONFIG, DEMO_MODEL_JSON } from './demo-config.js';
