// Opening a Hugging Face model directory: config.json, the parameter list it implies, and lazy access
// to the checkpoint's tensors under their canonical HF names, validated against each other up front.
import { CheckpointDir } from './checkpoint-dir.js';
import { matchCheckpoint } from './checkpoint-match.js';
import type { ModelConfig } from './model-config.js';
import { loadModelConfig } from './parse-model-config.js';
import { listParameters, type ParameterSpec } from './parameters.js';
import { TensorReader, type TensorSourceInfo } from './tensor-reader.js';

export interface HfModel {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly parameters: readonly ParameterSpec[];
  /** The weights by canonical HF name (the names in `parameters`); nothing is read until asked. */
  readonly weights: TensorReader;
  close(): Promise<void>;
}

export async function openHfModel(dir: string): Promise<HfModel> {
  const config = await loadModelConfig(dir);
  const parameters = listParameters(config);
  const checkpoint = await CheckpointDir.open(dir);
  try {
    const storedNameOf = matchCheckpoint(config, parameters, checkpoint.tensors, dir);
    const weights = new RenamedTensors(checkpoint, storedNameOf, dir);
    return { dir, config, parameters, weights, close: () => checkpoint.close() };
  } catch (e) {
    await checkpoint.close();
    throw e;
  }
}

/** A view of a reader under other names (canonical name -> stored name). */
class RenamedTensors extends TensorReader {
  readonly tensors: ReadonlyMap<string, TensorSourceInfo>;

  constructor(
    private readonly inner: TensorReader,
    private readonly storedNameOf: ReadonlyMap<string, string>,
    private readonly dir: string,
  ) {
    super();
    this.tensors = new Map([...storedNameOf].map(([name, stored]) => [name, inner.info(stored)]));
  }

  async readInto(name: string, dest: Uint8Array): Promise<void> {
    this.info(name);
    await this.inner.readInto(this.storedNameOf.get(name)!, dest);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  protected describe(): string {
    return this.dir;
  }
}
