// A whole training run: model (a Hugging Face directory or the built-in demo model), data (files or the
// built-in demo task), the trainer, the loop with periodic evaluation, metrics written as JSON lines.
// The CLI draws progress bars from the events; tests and benchmarks call it directly.
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  BatchLoader,
  demoTask,
  eosTokenIdFor,
  evalBatches,
  prepareDataset,
  describeDataset,
  type AnswerAccuracyResult,
  type BatchLoaderState,
  type DataBatch,
  type DemoTask,
  type PackedRows,
} from '../data/index.js';
import type { InvalidLinePolicy } from '../data/invalid-lines.js';
import { HfTokenizer, openHfModel, type ModelConfig } from '../hf/index.js';
import { DEMO_MODEL_CONFIG } from '../model/demo-config.js';
import { ModelWeights, type WeightDtype } from '../model/weights.js';
import { Rng } from '../util/rng.js';
import { mean } from '../util/stats.js';
import { planTrainerMemory } from '../planner/trainer-plan.js';
import { renderTrainReport } from '../report/train-report.js';
import type { TrainerOptions } from '../options/trainer-options.js';
import { Trainer, type StepMetrics } from '../trainer/trainer.js';
import {
  DEFAULT_KEEP_CHECKPOINTS,
  RESUMABLE_OPTIONS,
  TORCH_DTYPE_NAMES,
  exportHfModel,
  loadCheckpoint,
  readResumePoint,
  recoverInterruptedSaves,
  resumeTraining,
  type ResumePoint,
  type SavedWeightDtype,
} from '../checkpoint/index.js';
import { countNonFinite, describeNonFinite, trainerStateTensors } from '../trainer/finite-check.js';
import { writeTextFileAtomically } from '../hf/index.js';
import { checkOutputTargets } from './output-targets.js';
import { RunCheckpoints, type SavedCheckpoint } from './run-checkpoints.js';
import { RunLock } from './run-lock.js';
import { runSettings } from './run-settings.js';
import type { StopRequest } from './stop-request.js';

export interface TrainRunOptions {
  /** A Hugging Face model directory, or 'demo' for the built-in model and task. */
  model: string;
  /** .jsonl / .txt files (required unless model is 'demo'). */
  data?: readonly string[];
  /**
   * The token ending every example (a token or an id); default the tokenizer's eos_token, else
   * config.json's eos_token_id.
   */
  eosToken?: string;
  /** Invalid data lines stop the run ('error', default) or are left out and counted ('skip'). */
  invalidLines?: InvalidLinePolicy;
  /**
   * Evaluate on these files instead of the held-out split of `data` (e.g. a split by source file); the
   * held-out split then serves projector refits only.
   */
  evalData?: readonly string[];
  steps: number;
  batch: number;
  seqLen: number;
  dtype: WeightDtype;
  evalEvery: number;
  /** Held-out batches per evaluation. */
  evalBatches: number;
  metricsOut?: string;
  /** Write an HTML report (loss, throughput, where the time went, bytes, refits) of the run here. */
  reportPath?: string;
  trainer: Partial<TrainerOptions>;
  /**
   * A folder of checkpoints: checkpoint-<step> every `saveEvery` steps, at the end and when stopped, the
   * newest `keepCheckpoints` (default 2) kept. The run holds a lock on it while it runs.
   */
  checkpointDir?: string;
  saveEvery?: number;
  keepCheckpoints?: number;
  /**
   * Continue a run from this checkpoint (or the latest in a folder of them; same data and model
   * arguments). `trainer` options a resume may change (RESUMABLE_OPTIONS, the refit interval) apply.
   */
  resume?: string;
  /** Write the fine-tuned model here as a plain Hugging Face directory at the end. */
  exportDir?: string;
  /** Let the export replace an earlier export of ours (never anything else). */
  force?: boolean;
  /** Asked to stop (a signal): the loop ends after its current step and saves a checkpoint. */
  stop?: StopRequest;
  /** The export's dtype; default the input checkpoint's (the GPU weights' for the demo). */
  exportDtype?: SavedWeightDtype;
  /** lsp refits (TrainerOptions.refit): held-out batches the projectors are measured on (default 2). */
  refitBatches?: number;
  /** Write a Chrome/Perfetto trace of step `traceStep` (default: the third step) to this file. */
  tracePath?: string;
  traceStep?: number;
}

export interface EvalMetrics {
  step: number;
  evalLoss: number;
  /**
   * Wall time from the start of the loop to this evaluation (pending updates flushed first), and how
   * much of it went to earlier evaluations: elapsedMs - evaluatingMs is the training time behind this loss.
   */
  elapsedMs: number;
  evaluatingMs: number;
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
  /** The most bytes the allocator held (live + cached), the most ever live, and the planner's live peak. */
  peakGpuBytes: number;
  livePeakGpuBytes: number;
  plannedPeakBytes: number;
  totalMs: number;
  /** The trainer's step at the end (the resumed step plus the steps run). */
  finalStep: number;
  /** Why the run ended early (the StopRequest's reason), if it did. */
  stopped?: string;
  /** The last checkpoint saved (or resumed from). */
  checkpoint?: SavedCheckpoint;
}

interface Prepared {
  config: ModelConfig;
  /** The config.json of a Hugging Face model directory (kept in checkpoints and exports). */
  configJson?: unknown;
  /** Loads (or creates) the initial weights; not called when resuming from a checkpoint. */
  loadWeights: () => Promise<ModelWeights>;
  train: PackedRows;
  /** Projector refits measure on these rows. */
  heldOut: PackedRows;
  /** Evaluations run on these rows (heldOut unless --eval-data gives files of their own). */
  evaluation: PackedRows;
  task?: DemoTask;
  close(): Promise<void>;
}

async function prepare(gpu: GpuRuntime, o: TrainRunOptions, events: TrainRunEvents): Promise<Prepared> {
  const seed = o.trainer.seed ?? 0;
  if (o.model === 'demo') {
    const task = demoTask({ seqLen: o.seqLen, seed });
    events.onSetup?.(`demo: ${task.description}`);
    return {
      config: DEMO_MODEL_CONFIG,
      loadWeights: async () => ModelWeights.random(gpu, DEMO_MODEL_CONFIG, o.dtype, new Rng(seed, 7)),
      train: task.train,
      heldOut: task.heldOut,
      evaluation: task.heldOut,
      task,
      close: async () => {},
    };
  }
  if (!o.data?.length) throw new Error('--data <file> is required with --model <dir> (or use --model demo)');
  const hf = await openHfModel(o.model);
  try {
    const tokenizer = await HfTokenizer.load(o.model);
    const data = await prepareDataset({
      files: o.data,
      tokenizer,
      eosTokenId: eosTokenIdFor(tokenizer, hf.config, o.eosToken),
      seqLen: o.seqLen,
      seed,
      ...(o.invalidLines && { invalidLines: o.invalidLines }),
      ...(o.evalData?.length ? { evalFiles: o.evalData } : {}),
    });
    events.onSetup?.(describeDataset(data.report));
    const configJson: unknown = JSON.parse(await readFile(join(o.model, 'config.json'), 'utf8'));
    return {
      config: hf.config,
      configJson,
      loadWeights: () =>
        ModelWeights.load(gpu, hf, o.dtype, (done, total, name) =>
          events.onSetup?.(`loading weights ${done}/${total} ${name}`),
        ),
      train: data.train,
      heldOut: data.heldOut,
      evaluation: data.evaluation,
      close: () => hf.close(),
    };
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
  // where the run resumes from, and every place it writes, before anything is loaded
  const resumePoint = o.resume === undefined ? undefined : await readResumePoint(o.resume);
  await checkOutputTargets({ ...o, ...(resumePoint && { resume: resumePoint.dir }) });
  const lock =
    o.checkpointDir === undefined
      ? undefined
      : await RunLock.acquire(o.checkpointDir, '--checkpoint-dir', (m) => events.onSetup?.(m));
  try {
    if (o.checkpointDir !== undefined) await recoverInterruptedSaves(o.checkpointDir);
    return await runLocked(gpu, o, events, t0, resumePoint);
  } finally {
    lock?.release();
  }
}

async function runLocked(
  gpu: GpuRuntime,
  o: TrainRunOptions,
  events: TrainRunEvents,
  t0: number,
  resumePoint: ResumePoint | undefined,
): Promise<TrainSummary> {
  const p = await prepare(gpu, o, events);
  let trainer: Trainer;
  let weights: ModelWeights;
  let startStep = 0;
  let loaderState: BatchLoaderState | undefined;
  const records: object[] = [];
  if (resumePoint) {
    const ckpt = await loadCheckpoint(resumePoint.dir);
    const resumed = await resumeTraining(gpu, ckpt, {
      runtime: pick(o.trainer, ['threads', 'pipelined', 'checkpointing', 'lossChunkTokens']),
      ...(o.trainer.mode && { mode: o.trainer.mode }),
      model: p.config,
      changes: {
        ...pick(o.trainer, RESUMABLE_OPTIONS),
        ...(o.trainer.refit && { refit: o.trainer.refit }),
      },
    });
    trainer = resumed.trainer;
    weights = resumed.weights;
    startStep = ckpt.manifest.step;
    loaderState = ckpt.manifest.data ?? undefined;
    // a loop, not push(...): a long run keeps more records than a call takes arguments
    for (const r of ckpt.manifest.metrics ?? []) records.push(r as object);
    events.onSetup?.(`resumed from ${ckpt.dir} at step ${startStep}`);
  } else {
    weights = await p.loadWeights();
    try {
      trainer = await Trainer.create(gpu, weights, {
        seed: o.trainer.seed ?? 0,
        // the schedule spans the run unless told otherwise
        totalSteps: o.steps,
        ...o.trainer,
        plannedBatch: { batch: o.batch, seqLen: o.seqLen },
      });
    } catch (e) {
      weights.release();
      await p.close();
      throw e;
    }
  }
  await refuseNonFiniteWeights(trainer, resumePoint?.dir ?? o.model).catch(async (e: unknown) => {
    await trainer.destroy();
    weights.release();
    await p.close();
    throw e;
  });
  const checkpoints = new RunCheckpoints(
    o.checkpointDir,
    o.keepCheckpoints ?? DEFAULT_KEEP_CHECKPOINTS,
    resumePoint && { dir: resumePoint.dir, step: startStep },
    (m) => events.onSetup?.(m),
  );
  if (o.metricsOut) {
    await mkdir(dirname(o.metricsOut), { recursive: true });
    // a resumed run's file is its checkpoint's records (steps the interrupted run wrote after that
    // checkpoint are run again and must not appear twice), then the new ones
    await writeTextFileAtomically(o.metricsOut, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }
  const write = async (record: object) => {
    records.push(record);
    if (o.metricsOut) await appendFile(o.metricsOut, `${JSON.stringify(record)}\n`);
  };
  const loader = new BatchLoader(p.train, { batchSize: o.batch, seed: o.trainer.seed ?? 0 }, loaderState);
  // what the run was asked to do, first in the records (a resumed run keeps the one it started with)
  if (!o.resume) await write(runSettings(o, trainer.options, weights.dtype));
  const save = () =>
    checkpoints.save({
      trainer,
      data: loader.state(),
      metrics: records,
      ...(p.configJson !== undefined && { configJson: p.configJson }),
      ...(o.model !== 'demo' && { sourceDir: o.model }),
    });
  const stopping = () => o.stop?.requested === true;
  // a data set of a handful of examples holds none out: say so once instead of evaluating nothing (NaN)
  const evaluates = p.evaluation.rowCount > 0;
  const refitRows = p.heldOut.rowCount > 0 ? p.heldOut : p.train;
  if (!evaluates) events.onSetup?.(noHeldOutMessage(p.train.stats.examples));
  const evals: EvalMetrics[] = [];
  const losses: number[] = [];
  let tokensPerSecondSum = 0;
  let peak = 0;
  let livePeakGpuBytes: number;
  let clockStart = 0;
  let evaluatingMs = 0;
  const evaluate = async (step: number) => {
    if (!evaluates) return;
    await trainer.flush(); // the clock then covers every update of the steps before this evaluation
    const evalStart = performance.now();
    const batches = [...evalBatches(p.evaluation, o.batch, { maxRows: o.batch * o.evalBatches })];
    const evalLoss = await trainer.evaluate(batches);
    const m: EvalMetrics = { step, evalLoss, elapsedMs: evalStart - clockStart, evaluatingMs };
    if (p.task) {
      const acc = p.task.accuracy(p.config.vocabSize);
      for (const b of batches) {
        const logits = await trainer.model.logits(b);
        acc.add(await gpu.read(logits), b);
        logits.release();
      }
      m.accuracy = acc.result();
    }
    evaluatingMs += performance.now() - evalStart;
    evals.push(m);
    events.onEval?.(m);
    await write({ type: 'eval', mode: trainer.options.mode, ...m });
  };
  /** lsp with refits: the projector check due after `step` steps (step 0: before the first step). */
  const refitIfDue = async (step: number) => {
    const refit = await trainer.maybeRefit([
      ...evalBatches(refitRows, o.batch, { maxRows: o.batch * (o.refitBatches ?? 2) }),
    ]);
    if (!refit) return;
    const refitted = refit.groups.filter((g) => g.refitted).length;
    events.onSetup?.(
      `projector check at step ${step}: refitted ${refitted}/${refit.groups.length} pairs; mean error ` +
        `${mean(refit.groups.map((g) => g.errorBefore)).toFixed(3)} -> ${mean(refit.groups.map((g) => g.errorAfter)).toFixed(3)} (${(refit.ms / 1000).toFixed(1)} s)`,
    );
    await write({
      type: 'refit',
      step,
      ms: refit.ms,
      layers: refit.layers,
      groups: refit.groups.map(({ history: _h, ...g }) => g),
    });
  };
  try {
    clockStart = performance.now();
    if (!o.resume) {
      await evaluate(0);
      await refitIfDue(0);
    }
    for (let s = startStep + 1; s <= o.steps && !stopping(); s++) {
      const batch: DataBatch[] = Array.from({ length: trainer.options.gradAccum }, () => loader.next());
      const traceThis = o.tracePath !== undefined && s === (o.traceStep ?? Math.min(startStep + 3, o.steps));
      if (traceThis) trainer.traceNextStep();
      const m = await trainer.trainStep(batch);
      if (traceThis) {
        await writeFile(
          o.tracePath!,
          JSON.stringify({ traceEvents: (await trainer.takeTrace()) ?? [], displayTimeUnit: 'ms' }),
        );
        events.onSetup?.(`wrote a trace of step ${s} to ${o.tracePath} (open in https://ui.perfetto.dev)`);
      }
      losses.push(m.loss);
      if (!Number.isFinite(m.loss))
        throw new Error(`loss became ${m.loss} at step ${s}: stopping; ${checkpoints.advice()}`);
      tokensPerSecondSum += m.tokensPerSecond;
      peak = Math.max(peak, m.peakGpuBytes);
      events.onStep?.(m);
      await write({ type: 'step', mode: trainer.options.mode, ...m });
      // stopped (a signal during the step): straight to the checkpoint, no evaluation or refit
      if (stopping()) break;
      // (none after the last step: nothing would train with the new pairs)
      if (s < o.steps) await refitIfDue(s);
      if (s % o.evalEvery === 0 || s === o.steps) await evaluate(s);
      if (o.saveEvery && s % o.saveEvery === 0 && s !== o.steps) await save();
    }
    await trainer.flush();
    // the checkpoint first: nothing after it (a report, an export) can lose the run
    await save();
    if (o.reportPath) {
      await mkdir(dirname(o.reportPath), { recursive: true });
      await writeFile(o.reportPath, renderTrainReport(records, `lsp-offload train: ${o.model}`));
      events.onSetup?.(`wrote the report to ${o.reportPath}`);
    }
    if (o.exportDir && !stopping()) {
      await checkpoints.checkFinite(trainer, 'not exporting the model');
      await exportHfModel(o.exportDir, trainer, {
        dtype: o.exportDtype ?? inputDtype(p.config.savedDtype) ?? weights.dtype,
        ...(p.configJson !== undefined && { configJson: p.configJson }),
        ...(o.model !== 'demo' && { sourceDir: o.model }),
        force: o.force ?? false,
        protectedDirs: { '--model': o.model === 'demo' ? undefined : o.model },
      });
      events.onSetup?.(`exported the fine-tuned model to ${o.exportDir}`);
    }
  } finally {
    livePeakGpuBytes = gpu.memory.stats().livePeakBytes;
    await trainer.destroy();
    weights.release();
    await p.close();
  }
  const steps = losses.length;
  const plan = planTrainerMemory(
    trainer.weights.config,
    trainer.weights.dtype,
    { ...trainer.options, plannedBatch: { batch: o.batch, seqLen: o.seqLen } },
    gpu.memory.budgetBytes,
    gpu.maxBindingBytes,
  );
  return {
    mode: trainer.options.mode,
    steps,
    firstLoss: losses[0] ?? NaN,
    lastLoss: losses[losses.length - 1] ?? NaN,
    evals,
    meanTokensPerSecond: tokensPerSecondSum / Math.max(1, steps),
    peakGpuBytes: peak,
    livePeakGpuBytes,
    plannedPeakBytes: plan.peakBytes,
    totalMs: performance.now() - t0,
    finalStep: trainer.step,
    ...(o.stop?.reason !== undefined && { stopped: o.stop.reason }),
    ...(checkpoints.lastGood && { checkpoint: checkpoints.lastGood }),
  };
}

/** Weights with NaN or infinite values (a checkpoint of a diverged run, a damaged file) are refused. */
async function refuseNonFiniteWeights(trainer: Trainer, source: string): Promise<void> {
  const report = await countNonFinite(trainer.gpu, trainerStateTensors(trainer));
  if (report.total > 0)
    throw new Error(
      `${source}: ${describeNonFinite(report, 'loaded values')}: the model was saved from a diverged run or is ` +
        'damaged; start from an earlier checkpoint or the original model',
    );
}

function noHeldOutMessage(examples: number): string {
  return (
    `no held-out data: ${examples} example${examples === 1 ? ' is' : 's are'} too few to hold any out; ` +
    'evaluations are skipped (give --eval-data), projector checks measure on training rows'
  );
}

/** The saved dtype a config.json names ("float16", ...), when it is one an export can write. */
function inputDtype(savedDtype: string | undefined): SavedWeightDtype | undefined {
  const entry = Object.entries(TORCH_DTYPE_NAMES).find(([, torch]) => torch === savedDtype);
  return entry?.[0] as SavedWeightDtype | undefined;
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
