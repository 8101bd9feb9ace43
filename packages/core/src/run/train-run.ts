// A whole training run: model (a Hugging Face directory or the built-in demo model), data (files or the
// built-in demo task), the trainer, the loop with periodic evaluation, metrics written as JSON lines.
// The CLI draws progress bars from the events; tests and benchmarks call it directly.
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  BatchLoader,
  demoTask,
  evalBatches,
  prepareDataset,
  describeDataset,
  type AnswerAccuracyResult,
  type DataBatch,
  type DemoTask,
  type PackedRows,
} from '../data/index.js';
import { HfTokenizer, openHfModel, type ModelConfig } from '../hf/index.js';
import { DEMO_MODEL_CONFIG } from '../model/demo-config.js';
import { ModelWeights, type WeightDtype } from '../model/weights.js';
import { Rng } from '../util/rng.js';
import type { TrainerOptions } from '../trainer/options.js';
import { Trainer, type StepMetrics } from '../trainer/trainer.js';

export interface TrainRunOptions {
  /** A Hugging Face model directory, or 'demo' for the built-in model and task. */
  model: string;
  /** .jsonl / .txt files (required unless model is 'demo'). */
  data?: readonly string[];
  steps: number;
  batch: number;
  seqLen: number;
  dtype: WeightDtype;
  evalEvery: number;
  /** Held-out batches per evaluation. */
  evalBatches: number;
  metricsOut?: string;
  trainer: Partial<TrainerOptions>;
}

export interface EvalMetrics {
  step: number;
  evalLoss: number;
  /** Demo task: greedy-argmax accuracy of the answers. */
  accuracy?: AnswerAccuracyResult;
}

export interface TrainRunEvents {
  onSetup?(message: string): void;
  onStep?(m: StepMetrics): void;
  onEval?(m: EvalMetrics): void;
}

export interface TrainSummary {
  mode: string;
  steps: number;
  firstLoss: number;
  lastLoss: number;
  evals: EvalMetrics[];
  meanTokensPerSecond: number;
  peakGpuBytes: number;
  totalMs: number;
}

interface Prepared {
  config: ModelConfig;
  weights: ModelWeights;
  train: PackedRows;
  heldOut: PackedRows;
  task?: DemoTask;
  close(): Promise<void>;
}

async function prepare(gpu: GpuRuntime, o: TrainRunOptions, events: TrainRunEvents): Promise<Prepared> {
  const seed = o.trainer.seed ?? 0;
  if (o.model === 'demo') {
    const task = demoTask({ seqLen: o.seqLen, seed });
    events.onSetup?.(`demo: ${task.description}`);
    const weights = ModelWeights.random(gpu, DEMO_MODEL_CONFIG, o.dtype, new Rng(seed, 7));
    return {
      config: DEMO_MODEL_CONFIG,
      weights,
      train: task.train,
      heldOut: task.heldOut,
      task,
      close: async () => {},
    };
  }
  if (!o.data?.length) throw new Error('--data <file> is required with --model <dir> (or use --model demo)');
  const hf = await openHfModel(o.model);
  try {
    const tokenizer = await HfTokenizer.load(o.model);
    const data = await prepareDataset({ files: o.data, tokenizer, seqLen: o.seqLen, seed });
    events.onSetup?.(describeDataset(data.report));
    const weights = await ModelWeights.load(gpu, hf, o.dtype, (done, total, name) =>
      events.onSetup?.(`loading weights ${done}/${total} ${name}`),
    );
    return { config: hf.config, weights, train: data.train, heldOut: data.heldOut, close: () => hf.close() };
  } catch (e) {
    await hf.close();
    throw e;
  }
}

export async function runTraining(
  gpu: GpuRuntime,
  o: TrainRunOptions,
  events: TrainRunEvents = {},
): Promise<TrainSummary> {
  const t0 = performance.now();
  const p = await prepare(gpu, o, events);
  const trainer = await Trainer.create(gpu, p.weights, { seed: o.trainer.seed ?? 0, ...o.trainer });
  if (o.metricsOut) {
    await mkdir(dirname(o.metricsOut), { recursive: true });
    await writeFile(o.metricsOut, '');
  }
  const write = async (record: object) => {
    if (o.metricsOut) await appendFile(o.metricsOut, `${JSON.stringify(record)}\n`);
  };
  const loader = new BatchLoader(p.train, { batchSize: o.batch, seed: o.trainer.seed ?? 0 });
  const evals: EvalMetrics[] = [];
  const losses: number[] = [];
  let tokensPerSecondSum = 0;
  let peak = 0;
  const evaluate = async (step: number) => {
    const batches = [...evalBatches(p.heldOut, o.batch, { maxRows: o.batch * o.evalBatches })];
    const evalLoss = await trainer.evaluate(batches);
    const m: EvalMetrics = { step, evalLoss };
    if (p.task) {
      const acc = p.task.accuracy(p.config.vocabSize);
      for (const b of batches) {
        const logits = await trainer.model.logits(b);
        acc.add(await gpu.read(logits), b);
        logits.release();
      }
      m.accuracy = acc.result();
    }
    evals.push(m);
    events.onEval?.(m);
    await write({ type: 'eval', mode: trainer.options.mode, ...m });
  };
  try {
    await evaluate(0);
    for (let s = 1; s <= o.steps; s++) {
      const batch: DataBatch = loader.next();
      const m = await trainer.trainStep(batch);
      losses.push(m.loss);
      if (!Number.isFinite(m.loss))
        throw new Error(`loss became ${m.loss} at step ${s}: stopping (lower --lr?)`);
      tokensPerSecondSum += m.tokensPerSecond;
      peak = Math.max(peak, m.peakGpuBytes);
      events.onStep?.(m);
      await write({ type: 'step', mode: trainer.options.mode, ...m });
      if (s % o.evalEvery === 0 || s === o.steps) await evaluate(s);
    }
    await trainer.flush();
  } finally {
    await trainer.destroy();
    p.weights.release();
    await p.close();
  }
  return {
    mode: trainer.options.mode,
    steps: o.steps,
    firstLoss: losses[0] ?? NaN,
    lastLoss: losses[losses.length - 1] ?? NaN,
    evals,
    meanTokensPerSecond: tokensPerSecondSum / Math.max(1, o.steps),
    peakGpuBytes: peak,
    totalMs: performance.now() - t0,
  };
}
