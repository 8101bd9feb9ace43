// Hugging Face formats: safetensors, config.json, the parameter list, tokenizer.json.
export { HfFormatError } from './errors.js';
export {
  SAFETENSORS_DTYPES,
  FLOAT_DTYPES,
  dtypeByteSize,
  elementCount,
  isSafetensorsDtype,
  viewAsDtype,
} from './safetensors-dtypes.js';
export type { SafetensorsDtype, DtypeArrays, TensorArray } from './safetensors-dtypes.js';
export {
  bf16BitsToFloat32,
  f16BitsToFloat32,
  float32BitsToBf16Bits,
  float32BitsToF16Bits,
  float32ToBf16Bits,
  float32ToF16Bits,
  float64ToF16Bits,
  float64ToF16BitsOne,
} from './float-convert.js';
export { MAX_HEADER_BYTES, parseHeaderLength, parseSafetensorsHeader } from './safetensors-header.js';
export type { SafetensorsHeader, SafetensorsTensorInfo } from './safetensors-header.js';
export { TensorReader } from './tensor-reader.js';
export type { Tensor, TensorSourceInfo } from './tensor-reader.js';
export { SafetensorsFile } from './safetensors-file.js';
export { stageSafetensors, writeSafetensors } from './safetensors-write.js';
export type { SafetensorsWriteOptions, TensorToWrite } from './safetensors-write.js';
export { FileWriteError, stageFile, writeFileAtomically, writeTextFileAtomically } from './atomic-file.js';
export type { StagedFile } from './atomic-file.js';
export {
  CheckpointDir,
  INDEX_FILE_NAME,
  SAVE_ID_KEY,
  SINGLE_FILE_NAME,
  writeCheckpointDir,
} from './checkpoint-dir.js';
export type { CheckpointWriteOptions } from './checkpoint-dir.js';
export { SUPPORTED_MODEL_TYPES, loadModelConfig, parseModelConfig } from './parse-model-config.js';
export type { ModelConfig, ModelFamily } from './model-config.js';
export { listParameters, parameterCount } from './parameters.js';
export type {
  BiasSpec,
  EmbeddingSpec,
  Gpt2LinearType,
  LinearType,
  LinearWeightSpec,
  LlamaLinearType,
  LmHeadSpec,
  NormModule,
  NormSpec,
  ParameterRole,
  ParameterSpec,
} from './parameters.js';
export { CheckpointMismatchError, matchCheckpoint } from './checkpoint-match.js';
export type { CheckpointProblem, StoredTensor } from './checkpoint-match.js';
export { openHfModel } from './hf-model.js';
export type { HfModel } from './hf-model.js';
export { HfTokenizer } from './tokenizer.js';
export type { EncodeOptions } from './tokenizer.js';
