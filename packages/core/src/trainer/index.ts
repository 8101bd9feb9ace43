export { Trainer } from './trainer.js';
export type { StepMetrics } from './trainer.js';
