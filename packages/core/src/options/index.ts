// What a run is configured by: the trainer's options and their defaults, the list of modes.
export { DEFAULT_TRAINER_OPTIONS, TRAIN_MODES } from './trainer-options.js';
export type { TrainerOptions, TrainMode, OptimizerHyperParams } from './trainer-options.js';
