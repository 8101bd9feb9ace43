export { Trainer } from './trainer.js';
export type { StepMetrics } from './trainer.js';
export { createProjectedLayers, projectedSpecs } from './projected-layers.js';
export type { ProjectedLayer } from './projected-layers.js';
