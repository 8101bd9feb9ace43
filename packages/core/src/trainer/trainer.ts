// The trainer: one optimizer step per batch in one of three modes sharing all model code.
//   native: dense gradients and AdamW on the GPU (the unlimited-memory reference; gpu-optimizer.ts).
//   lsp:    compressed gradients S -> CPU subspace AdamW -> step D -> GPU apply W += L D R^T.
//   zero:   fp16 dense gradients -> CPU AdamW on fp32 master weights -> weights back to the GPU.
// The offloading modes run the layer-wise schedule (layerwise-schedule.ts), which owns the CPU optimizer
// and the staging rings; the projector pairs that compress and apply are the ProjectorSet's. The trainer
// orchestrates a step (the model's forward and backward, and the mode's updates at each block boundary),
// the projector refits, evaluation, and each step's metrics and trace.
import { GpuTimer, type GpuRuntime, type Tensor, type TraceEvent } from '@lsp-offload/gpu-dawn';
import type { AdamW as CpuAdamW } from '@lsp-offload/cpu-wasm';
import { DenseGradients } from '../model/dense-gradients.js';
import { resolvePrecision, type Precision } from '../model/precision.js';
import { Transformer, type StepHooks, type TokenBatch } from '../model/transformer.js';
import type { ModelWeights } from '../model/weights.js';
import {
  DEFAULT_REFIT,
  DEFAULT_TRAINER_OPTIONS,
  TRAIN_MODES,
  type TrainerOptions,
} from '../options/trainer-options.js';
import { checkBudget } from '../planner/budget.js';
import { DEFAULT_LEAD_BLOCKS } from '../planner/plan-input.js';
import { planTrainerMemory } from '../planner/trainer-plan.js';
import type { ProjectorPair } from '../projectors/projector-pair.js';
import {
  ProjectorRefitter,
  type HeldOutGradients,
  type RefitReport,
} from '../projectors/projector-refitter.js';
import { projectedLayersOf } from '../projectors/projector-groups.js';
import { ProjectorSet } from '../projectors/projector-set.js';
import type { RngState } from '../util/rng.js';
import { checkAdapterLimits } from './dispatch-limits.js';
import { GpuOptimizer, type GpuAdamWState } from './gpu-optimizer.js';
import { LayerwiseSchedule } from './layerwise-schedule.js';
import { LossScaler, type LossScaleStatus } from './loss-scaler.js';
import { checkLrSchedule, scheduledLr } from './lr-schedule.js';
import { cpuStepTimingSince, type CpuStepTiming } from './mode-updates.js';
import {
  offloadCriticalPath,
  offloadFigures,
  offloadTraceEvents,
  type OffloadFigures,
  type OffloadPiece,
  type TransferRates,
} from './offload-critical-path.js';
import { rankProblem } from './rank-check.js';
import { HEAD_UNIT, OUTER_UNIT } from './sinks.js';
import { StepRecorder, type StepCounters } from './step-recorder.js';
import { StepTrace, TRACE_PID, TRACE_THREADS } from './trace.js';

export interface StepMetrics extends OffloadFigures {
  step: number;
  /** Mean loss over the step's micro-batches. */
  loss: number;
  /** The learning rate this step used (the schedule's). */
  lr: number;
  /** Global norm of the (mean) gradient before clipping; null unless --max-grad-norm is set. */
  gradNorm: number | null;
  /** The loss scale this step's gradients were multiplied by (1 in f32 precision). */
  lossScale: number;
  /**
   * A gradient of this step was non-finite (a loss-scale overflow in mixed precision): native skipped the
   * whole step, the offloading modes each update unit whose own gradients were non-finite.
   */
  nonFiniteGradients: boolean;
  /** Steps with non-finite gradients so far in the run. */
  skippedSteps: number;
  /** Micro-batches (gradient accumulation). */
  microBatches: number;
  tokens: number;
  wallMs: number;
  tokensPerSecond: number;
  bytesToHost: number;
  bytesToDevice: number;
  /** The same bytes by what travelled (S, gradients, embedding rows, headers / D, parameters). */
  bytesByKind: StepCounters['bytesByKind'];
  /** Time the recorder waited for a CPU update before a forward (the GPU may have idled meanwhile). */
  waitForUpdatesMs: number;
  /** Updates applied inside the backward vs deferred to the next step's pre-forward slot. */
  appliedInBackward: number;
  appliedBeforeForward: number;
  /** Summed duration of CPU optimizer steps (they run on worker threads). */
  cpuOptimizerMs: number;
  /** Time CPU optimizer steps ran during this step (on worker threads), from call to resolution. */
  workerBusyMs: number;
  /**
   * The CPU optimizer steps that ended during this step, summed, as the workers saw them: their wall time
   * (about workerBusyMs) = startLatencyMs + workerSpanMs + noticeLatencyMs; a large noticeLatencyMs is
   * time the main thread (busy recording GPU work) took to see the workers were done.
   */
  cpuStepTiming: CpuStepTiming;
  /** Time the main thread was not waiting (recording GPU work, moving bytes). */
  mainThreadBusyMs: number;
  /** GPU time of this step's compute passes (timestamp queries; null where the adapter lacks them). */
  gpuBusyMs: number | null;
  /** Wall time minus GPU busy: the GPU waited for the CPU, transfers or the recorder. */
  gpuIdleMs: number | null;
  peakGpuBytes: number;
}

/** lsp: the projector pairs, each projected layer's view of its pair, and the refitter when refits are on. */
interface LspProjectors {
  set: ProjectorSet;
  pairs: ReadonlyMap<string, ProjectorPair>;
  refitter: ProjectorRefitter | undefined;
}

function lspProjectors(gpu: GpuRuntime, weights: ModelWeights, options: TrainerOptions): LspProjectors {
  if (options.refit && options.exactProjectors)
    throw new Error('projector refits and exact projectors exclude each other');
  const set = new ProjectorSet(gpu, projectedLayersOf(weights.specs), {
    d: options.rank,
    r: options.nnz,
    sharing: options.refit?.sharing ?? 'layer',
    seed: options.seed,
    init: options.projectorInit,
    exact: options.exactProjectors,
  });
  const refitter =
    options.refit &&
    new ProjectorRefitter(gpu, set, {
      alpha: options.refit.alpha,
      checkFreq: options.refit.checkFreq,
      atStart: options.refit.atStart ?? DEFAULT_REFIT.atStart,
      // one group's gradients at a time bounds the memory a check takes
      layersPerRequest: 1,
    });
  return { set, pairs: set.pairsOf(weights.specs), refitter };
}

function nonFiniteGradientsError(step: number, lossScale: number, precision: Precision): Error {
  const scaled = precision === 'mixed' ? ` at loss scale ${lossScale}, so not a loss-scale overflow` : '';
  return new Error(
    `step ${step}: non-finite gradients${scaled}; the step was skipped (weights and optimizer state are as ` +
      `before it). The run diverged (lower --lr?)` +
      (precision === 'mixed' ? ' or an f16 activation overflowed (--precision f32).' : '.'),
  );
}

/** One GPU timer per runtime: a second trainer on the same runtime goes without GPU busy times. */
function tryTimer(gpu: GpuRuntime): GpuTimer | undefined {
  try {
    return new GpuTimer(gpu, { capacityPasses: 2048, keepOccurrences: 64 });
  } catch {
    return undefined;
  }
}

export class Trainer {
  private stepCount = 0;
  private timer: GpuTimer | undefined;
  private traceRequested = false;
  private lastTrace: { trace: StepTrace; startMs: number; pieces: OffloadPiece[] } | undefined;

  private constructor(
    readonly gpu: GpuRuntime,
    readonly weights: ModelWeights,
    readonly options: TrainerOptions,
    readonly model: Transformer,
    private readonly projectors: LspProjectors | undefined,
    /** The mode's update path: the layer-wise schedule (lsp, zero) or the GPU optimizer (native). */
    private readonly updates: LayerwiseSchedule | GpuOptimizer,
    private readonly recorder: StepRecorder,
    /** Non-finite gradient guard and (mixed precision) the dynamic loss scale. */
    private readonly scaler: LossScaler,
  ) {
    // GPU busy time per step; a runtime holds at most one timer, so share none with other users
    this.timer = gpu.has('timestamp-query') ? tryTimer(gpu) : undefined;
  }

  static async create(
    gpu: GpuRuntime,
    weights: ModelWeights,
    options: Partial<TrainerOptions> = {},
  ): Promise<Trainer> {
    const o: TrainerOptions = { ...DEFAULT_TRAINER_OPTIONS, ...options };
    if (!TRAIN_MODES.includes(o.mode)) {
      throw new Error(`unknown training mode '${o.mode}': use ${TRAIN_MODES.join(', ')}`);
    }
    // auto resolves by the adapter; the options keep the resolved value (checkpoints save it)
    o.precision = resolvePrecision(o.precision, gpu.has('shader-f16'));
    const ls = o.lossScale;
    if (!(
      ls.initScale > 0 &&
      Number.isFinite(ls.initScale) &&
      Number.isInteger(ls.growthInterval) &&
      ls.growthInterval >= 1
    ))
      throw new RangeError(
        `loss scale: initScale must be finite and > 0 and growthInterval an integer >= 1, got ${JSON.stringify(ls)}`,
      );
    checkLrSchedule(o);
    const tooLarge = o.mode === 'lsp' && !o.exactProjectors ? rankProblem(weights.config, o.rank) : undefined;
    if (tooLarge) throw new Error(tooLarge);
    if (!(Number.isInteger(o.gradAccum) && o.gradAccum >= 1))
      throw new RangeError(`gradient accumulation must be an integer >= 1, got ${o.gradAccum}`);
    if (!(Number.isFinite(o.maxGradNorm) && o.maxGradNorm >= 0))
      throw new RangeError(`max gradient norm must be a number >= 0 (0: no clipping), got ${o.maxGradNorm}`);
    // refuse a run that cannot fit before projectors, staging, activations or optimizer state exist; the
    // plan also sizes the staging rings (for leadBlocks + 1 blocks in flight, within the budget)
    const plan = planTrainerMemory(
      weights.config,
      weights.dtype,
      o,
      gpu.memory.budgetBytes,
      gpu.maxBindingBytes,
    );
    checkAdapterLimits(gpu, plan, weights.dtype);
    if (Number.isFinite(gpu.memory.budgetBytes)) checkBudget(plan, gpu.memory.budgetBytes);
    const model = new Transformer(gpu, weights, {
      checkpointing: o.checkpointing,
      lossChunkTokens: o.lossChunkTokens,
      precision: o.precision,
    });
    const projectors = o.mode === 'lsp' ? lspProjectors(gpu, weights, o) : undefined;
    const recorder = new StepRecorder();
    const scaler = new LossScaler(gpu, o.precision, o.lossScale);
    const updates =
      o.mode === 'native'
        ? new GpuOptimizer(gpu, weights, o, scaler)
        : await LayerwiseSchedule.create(
            gpu,
            weights,
            o,
            projectors?.pairs ?? new Map(),
            recorder,
            {
              slots: plan.input.stagingSlots,
              chunkBytes: plan.input.stagingChunkBytes,
            },
            scaler,
          );
    return new Trainer(gpu, weights, o, model, projectors, updates, recorder, scaler);
  }

  get step(): number {
    return this.stepCount;
  }

  /** f32 or mixed (resolved from the options' auto by the adapter). */
  get precision(): Precision {
    return this.options.precision as Precision;
  }

  /** Where loss scaling stands after the last step (checkpoints save it; f32: scale 1). */
  get lossScaleStatus(): LossScaleStatus {
    return this.scaler.status;
  }

  /** Continue with a saved loss scale and skipped-step count (a restored checkpoint). */
  restoreLossScale(s: LossScaleStatus): void {
    this.scaler.restore(s);
  }

  /** The recorder runs at most this many blocks ahead of the GPU (offloading modes). */
  get leadBlocks(): number {
    return this.updates instanceof LayerwiseSchedule ? this.updates.leadBlocks : DEFAULT_LEAD_BLOCKS;
  }

  set leadBlocks(n: number) {
    if (this.updates instanceof LayerwiseSchedule) this.updates.leadBlocks = n;
  }

  /** lsp with refits: the refitter's generator state (checkpoints save and restore it). */
  get refitRngState(): RngState | undefined {
    return this.projectors?.refitter?.set.rngState;
  }

  restoreRefitRng(s: RngState): void {
    const refitter = this.projectors?.refitter;
    if (!refitter) throw new Error('this trainer does not refit its projectors: no generator to restore');
    refitter.set.rngState = s;
  }

  /** Continue counting from a restored checkpoint (the next trainStep is step n + 1). */
  restoreStep(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`step must be a non-negative integer, got ${n}`);
    this.stepCount = n;
  }

  /** The CPU optimizer of the offloading modes (its stateDict() holds moments, masters and step counts). */
  get cpuOptimizer(): CpuAdamW | undefined {
    return this.updates instanceof LayerwiseSchedule ? this.updates.cpuOptimizer : undefined;
  }

  /** lsp: the projected layers with their projector pairs (host copies and GPU tensors). */
  get projectedLayers(): ReadonlyMap<string, ProjectorPair> {
    return this.projectors?.pairs ?? new Map();
  }

  /** native: the GPU AdamW state per parameter (created at the first step). */
  get gpuOptimizerState(): ReadonlyMap<string, GpuAdamWState> {
    return this.updates instanceof GpuOptimizer ? this.updates.state : new Map();
  }

  /** native: create the GPU AdamW state now (e.g. before loading a checkpoint into it). */
  ensureGpuOptimizerState(): void {
    if (!(this.updates instanceof GpuOptimizer))
      throw new Error(`the ${this.options.mode} trainer keeps no optimizer state on the GPU`);
    this.updates.ensureState();
  }

  /** One optimizer step on `batch`, or on the mean gradient of gradAccum micro-batches. */
  async trainStep(batch: TokenBatch | readonly TokenBatch[]): Promise<StepMetrics> {
    const batches: readonly TokenBatch[] = Array.isArray(batch) ? batch : [batch as TokenBatch];
    if (batches.length !== this.options.gradAccum)
      throw new Error(
        `trainStep got ${batches.length} micro-batches; gradient accumulation is set to ${this.options.gradAccum}`,
      );
    this.updates.beginStep(
      batches.length,
      batches.map((b) => b.inputIds),
    );
    try {
      return await this.optimizerStep(batches);
    } catch (e) {
      this.updates.failStep(e);
      throw e;
    }
  }

  private async optimizerStep(batches: readonly TokenBatch[]): Promise<StepMetrics> {
    const t0 = performance.now();
    const rec = this.recorder;
    const updates = this.updates;
    this.stepCount++;
    rec.begin(this.stepCount, this.traceRequested ? new StepTrace(this.stepCount) : undefined);
    this.traceRequested = false;
    const workerBusyBefore = updates.cpuBusyMs;
    const cpuStepsBefore = { ...updates.cpuStepTiming };
    const scaler = this.scaler;
    const lossScale = scaler.scale;
    scaler.beginStep();
    const gpuBefore = this.gpuStepMs();
    this.timer?.begin('step');
    rec.segment('record forward');
    const hooks: StepHooks = {
      beforeForward: () => updates.beforeForward(OUTER_UNIT),
      beforeBlockForward: async (layer) => {
        await updates.beforeForward(layer);
        rec.segment(`record forward L${layer}`);
      },
      afterBlockBackward: async (layer) => {
        await updates.afterBlockBackward(layer);
        rec.segment(layer > 0 ? `record backward L${layer - 1}` : 'record embedding backward');
      },
      // the head's forward, the loss and the head's backward run before the top block's backward
      beforeHeadForward: async () => {
        await updates.beforeForward(HEAD_UNIT);
        rec.segment(`record head, loss, backward L${this.weights.config.numLayers - 1}`);
      },
    };
    // gradient accumulation: the micro-batches before the last only add into the sink's gradients
    const losses: Tensor[] = [];
    for (const [i, micro] of batches.entries()) {
      const last = i === batches.length - 1;
      updates.sink.accumulate = i > 0;
      updates.sink.microBatch = i;
      const { loss } = await this.model.trainStep(
        micro,
        updates.sink,
        last ? hooks : { ...hooks, afterBlockBackward: undefined },
        { ...(scaler.lossScale && { lossScale: scaler.lossScale }) },
      );
      losses.push(loss);
    }
    updates.sink.accumulate = false;
    rec.segment('after backward');
    await updates.afterBackward(this.stepCount);
    this.timer?.end('step');
    let lossSum = 0;
    // the loss scale's outcome is read in the same wait as the loss (no sync of its own)
    const [values, scaled] = await rec.waiting('read loss', () =>
      Promise.all([Promise.all(losses.map(async (l) => (await this.gpu.read(l))[0]!)), scaler.finishStep()]),
    );
    for (const [i, loss] of losses.entries()) {
      lossSum += values[i]!;
      loss.release();
    }
    // a non-finite gradient at a scale of 1 or less is no loss-scale overflow that a smaller scale cures:
    // stop instead of skipping every step from here on (the step changed nothing)
    if (scaler.lastStepSkipped && lossScale <= 1)
      throw nonFiniteGradientsError(this.stepCount, lossScale, this.precision);
    const lossValue = lossSum / losses.length;
    const gradNorm = await updates.gradNorm();
    rec.segment(undefined);
    const wallMs = performance.now() - t0;
    await this.timer?.settle();
    const gpuBusyMs = this.timer ? this.gpuStepMs() - gpuBefore : null;
    const tokens = batches.reduce((n, b) => n + b.batch * b.seqLen, 0);
    const m = rec.counters;
    if (rec.trace) this.lastTrace = { trace: rec.trace, startMs: t0, pieces: rec.offloadPieces };
    rec.trace = undefined;
    return {
      ...m,
      step: this.stepCount,
      loss: lossValue,
      lr: scheduledLr(this.options, this.stepCount),
      gradNorm,
      lossScale,
      nonFiniteGradients: scaler.lastStepSkipped,
      skippedSteps: scaled.skippedSteps,
      microBatches: batches.length,
      tokens,
      wallMs,
      tokensPerSecond: (tokens / wallMs) * 1000,
      cpuOptimizerMs: updates.cpuBusyMs,
      workerBusyMs: updates.cpuBusyMs - workerBusyBefore,
      cpuStepTiming: cpuStepTimingSince(updates.cpuStepTiming, cpuStepsBefore),
      mainThreadBusyMs: wallMs - m.idleMs,
      gpuBusyMs,
      gpuIdleMs: gpuBusyMs === null ? null : Math.max(0, wallMs - gpuBusyMs),
      peakGpuBytes: this.gpu.memory.stats().peakBytes,
      // the updates the previous step started: all of them have landed by now (the last ones before
      // this step's forwards)
      ...offloadFigures(rec.previousOffloadPieces, rec.transferRates),
    };
  }

  /** Offloading modes: the staging rings' throughput each way, measured when the trainer was created. */
  get transferRates(): TransferRates | undefined {
    return this.recorder.transferRates;
  }

  /**
   * lsp with refits: when a check is due after the current step, measure every projector pair on dense
   * gradients of `heldOut` and refit those above alpha, moving their moments (CPU optimizer state) into
   * the new subspace. Returns the report, or undefined when no check was due.
   */
  async maybeRefit(heldOut: readonly TokenBatch[]): Promise<RefitReport | undefined> {
    const refitter = this.projectors?.refitter;
    const schedule = this.updates;
    if (!refitter || !(schedule instanceof LayerwiseSchedule) || !refitter.due(this.stepCount))
      return undefined;
    if (!heldOut.length) throw new Error('projector refit: no held-out batches to measure the projectors on');
    await this.flush(); // the moments and weights must include every update so far
    let sinks: DenseGradients[] = [];
    const releaseSinks = () => {
      for (const s of sinks) s.release();
      sinks = [];
    };
    const gradients: HeldOutGradients = async (names) => {
      releaseSinks();
      const wanted = new Set(names);
      const out = new Map<string, Tensor[]>(names.map((n) => [n, []]));
      for (const batch of heldOut) {
        const sink = new DenseGradients(this.gpu, this.weights, (spec) => wanted.has(spec.name));
        sinks.push(sink);
        // under the run's loss scale, so small f16 gradients survive (the projector error is scale-free)
        const scale = this.scaler.lossScale;
        const { loss } = await this.model.trainStep(batch, sink, {}, { ...(scale && { lossScale: scale }) });
        loss.release();
        for (const n of names) out.get(n)!.push(sink.get(n)!);
      }
      await this.gpu.sync('held-out gradients for the projector check');
      return out;
    };
    const moments = schedule.refitMoments();
    const report = await refitter.refit(gradients, moments);
    releaseSinks();
    moments.release();
    await this.gpu.sync('projector refit');
    return report;
  }

  /** Record a Chrome/Perfetto trace of the next step (read it with takeTrace() after that step). */
  traceNextStep(): void {
    this.traceRequested = true;
  }

  /**
   * The trace of the last traced step (Chrome trace event format), once. Waits for the CPU updates that
   * step started (they may finish during the next one), so their spans are in.
   */
  async takeTrace(): Promise<TraceEvent[] | undefined> {
    const t = this.lastTrace;
    this.lastTrace = undefined;
    if (!t) return undefined;
    await this.updates.settled();
    await this.timer?.settle();
    return this.traceEvents(t.trace, t.startMs, t.pieces);
  }

  private traceEvents(trace: StepTrace, startMs: number, pieces: readonly OffloadPiece[]): TraceEvent[] {
    const gpu = (this.timer?.traceEvents({ pid: TRACE_PID, tid: TRACE_THREADS.gpu }) ?? []).filter(
      (e) => e.ph === 'M' || e.ts >= startMs * 1000 - 1,
    );
    const rates = this.recorder.transferRates;
    const model =
      rates && pieces.length
        ? offloadTraceEvents(
            offloadCriticalPath(pieces, rates),
            startMs,
            TRACE_PID,
            TRACE_THREADS.offloadModel,
          )
        : [];
    return [...trace.events(), ...gpu, ...model];
  }

  private gpuStepMs(): number {
    return this.timer?.regions().find((r) => r.name === 'step')?.totalMs ?? 0;
  }

  /** Mean loss over batches, with every pending update applied first. */
  async evaluate(batches: Iterable<TokenBatch>): Promise<number> {
    await this.flush();
    let sum = 0;
    let n = 0;
    for (const b of batches) {
      const { loss } = await this.model.evalLoss(b);
      sum += (await this.gpu.read(loss))[0]!;
      loss.release();
      n++;
    }
    return sum / n;
  }

  /** Apply every pending update (before evaluation, saving and exit). */
  async flush(): Promise<void> {
    await this.updates.flush();
  }

  async destroy(): Promise<void> {
    await this.flush().catch(() => undefined);
    this.timer?.destroy();
    this.timer = undefined;
    await this.updates.destroy();
    this.scaler.release();
    this.projectors?.set.release();
    this.model.release();
  }
}
