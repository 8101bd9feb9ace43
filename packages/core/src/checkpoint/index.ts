// Training checkpoints (save, load, resume) and the export of the trained model as a plain HF directory.
export { CheckpointError } from './errors.js';
export { saveCheckpoint } from './save-checkpoint.js';
export type { CheckpointContents, SaveCheckpointOptions } from './save-checkpoint.js';
export { loadCheckpoint, restoreTrainer, resumeTraining } from './load-checkpoint.js';
export type {
  Checkpoint,
  LoadCheckpointOptions,
  ResumeOptions,
  ResumedRun,
  RuntimeOptions,
} from './load-checkpoint.js';
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  CPU_OPTIMIZER_FILE,
  GPU_OPTIMIZER_FILE,
  MANIFEST_FILE,
  PROJECTORS_FILE,
} from './manifest.js';
export type { CheckpointManifest } from './manifest.js';
export type { FileDigest } from './file-digest.js';
export { AUXILIARY_MODEL_FILES, exportHfModel, writeModelFiles } from './model-export.js';
export type { ExportOptions, ModelFilesOptions, ModelSource } from './model-export.js';
export { TORCH_DTYPE_NAMES, configJsonFor, renderConfigJson } from './config-json.js';
export type { SavedWeightDtype } from './config-json.js';
export { recoverInterruptedReplace, replaceDirectoryAtomically } from './atomic-directory.js';
export type { ReplaceOptions } from './atomic-directory.js';
export {
  DEFAULT_KEEP_CHECKPOINTS,
  checkpointPath,
  isCheckpoint,
  listCheckpoints,
  pruneCheckpoints,
  readResumePoint,
  recoverInterruptedSaves,
  resolveCheckpoint,
} from './checkpoint-series.js';
export type { ResumePoint, SeriesCheckpoint } from './checkpoint-series.js';
export { EXPORT_MARKER_FILE, exportTargetProblem, isOwnExport } from './export-target.js';
export type { ExportTargetOptions } from './export-target.js';
export { RESUMABLE_OPTIONS, applyResumeChanges } from './resume-changes.js';
export type { ResumeChanges } from './resume-changes.js';
