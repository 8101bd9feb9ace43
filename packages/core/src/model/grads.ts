// Loss, logits and every parameter gradient of one batch: what `lsp-offload grads` writes, so anyone can
// check our numbers against another implementation (e.g. HF transformers).
import { createLossScaleState, type GpuRuntime, type LossScaleState } from '@lsp-offload/gpu-dawn';
import { SafetensorsFile, openHfModel, writeSafetensors, type TensorToWrite } from '../hf/index.js';
import { DenseGradients } from './dense-gradients.js';
import { Transformer, type TokenBatch } from './transformer.js';
import { ModelWeights, type WeightDtype } from './weights.js';
import type { Precision } from './precision.js';

export interface GradsOptions {
  dtype: WeightDtype;
  checkpointing: boolean;
  /** Default f32. */
  precision?: Precision;
  /**
   * mixed: the loss scale the backward runs under (default 2^16, GradScaler's initial scale); the
   * gradients returned are divided by it again. An overflow shows as non-finite gradients.
   */
  lossScale?: number;
}

export interface GradsResult {
  loss: number;
  keptTokens: number;
  /** [batch, seq, vocab] */
  logits: Float32Array;
  vocabSize: number;
  /** By HF name, in the model's parameter order, with stored shapes. */
  grads: Map<string, { shape: readonly number[]; data: Float32Array }>;
}

/** Read `input_ids` and `labels` (integer, [batch, seq]) from a safetensors file. */
export async function readTokenBatch(path: string): Promise<TokenBatch> {
  const file = await SafetensorsFile.open(path);
  try {
    for (const name of ['input_ids', 'labels']) {
      if (!file.has(name))
        throw new Error(`${path}: missing tensor '${name}' (need input_ids and labels, int [batch, seq])`);
    }
    const ids = await file.readInt32('input_ids');
    const labels = await file.readInt32('labels');
    if (ids.shape.length !== 2)
      throw new Error(`${path}: input_ids must be [batch, seq], got [${ids.shape.join(', ')}]`);
    if (labels.shape.join() !== ids.shape.join()) {
      throw new Error(
        `${path}: labels [${labels.shape.join(', ')}] must match input_ids [${ids.shape.join(', ')}]`,
      );
    }
    return { batch: ids.shape[0]!, seqLen: ids.shape[1]!, inputIds: ids.data, labels: labels.data };
  } finally {
    await file.close();
  }
}

export async function computeGradients(
  gpu: GpuRuntime,
  modelDir: string,
  batch: TokenBatch,
  options: GradsOptions,
): Promise<GradsResult> {
  const hf = await openHfModel(modelDir);
  let weights: ModelWeights | undefined;
  let model: Transformer | undefined;
  let sink: DenseGradients | undefined;
  let scale: LossScaleState | undefined;
  const precision = options.precision ?? 'f32';
  const lossScale = precision === 'mixed' ? (options.lossScale ?? 2 ** 16) : 1;
  try {
    weights = await ModelWeights.load(gpu, hf, options.dtype);
    model = new Transformer(gpu, weights, { checkpointing: options.checkpointing, precision });
    const logitsT = await model.logits(batch);
    const logits = (await gpu.read(logitsT)) as Float32Array;
    logitsT.release();
    sink = new DenseGradients(gpu, weights);
    if (lossScale !== 1) scale = createLossScaleState(gpu, { initScale: lossScale });
    const { loss, keptTokens } = await model.trainStep(
      batch,
      sink,
      {},
      scale ? { lossScale: { tensor: scale.scale } } : {},
    );
    const lossValue = (await gpu.read(loss))[0]!;
    loss.release();
    const raw = await sink.readAll();
    const grads = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const spec of weights.specs) {
      const g = raw.get(spec.name);
      if (!g) continue;
      if (lossScale !== 1) for (let i = 0; i < g.length; i++) g[i] = g[i]! / lossScale;
      grads.set(spec.name, { shape: spec.shape, data: g });
    }
    return { loss: lossValue, keptTokens, logits, vocabSize: hf.config.vocabSize, grads };
  } finally {
    scale?.scale.release();
    scale?.counters.release();
    sink?.release();
    model?.release();
    weights?.release();
    await hf.close();
  }
}

/** loss [1], logits [batch, seq, vocab] and each gradient under its HF name, all F32. */
export async function writeGradsFile(path: string, batch: TokenBatch, result: GradsResult): Promise<void> {
  const tensors: TensorToWrite[] = [
    { name: 'loss', dtype: 'F32', shape: [1], data: Float32Array.of(result.loss) },
    {
      name: 'logits',
      dtype: 'F32',
      shape: [batch.batch, batch.seqLen, result.vocabSize],
      data: result.logits,
    },
  ];
  for (const [name, g] of result.grads) tensors.push({ name, dtype: 'F32', shape: g.shape, data: g.data });
  await writeSafetensors(path, tensors, { metadata: { kept_tokens: String(result.keptTokens) } });
}
