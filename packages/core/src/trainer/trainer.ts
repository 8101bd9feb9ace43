// The trainer: one optimizer step per batch in one of three modes sharing all model code.
//   native: dense gradients and AdamW on the GPU (the unlimited-memory reference).
//   lsp:    compressed gradients S -> CPU subspace AdamW -> step D -> GPU apply W += L D R^T.
//   zero:   fp16 dense gradients -> CPU AdamW on fp32 master weights -> weights back to the GPU.
// The offloading modes run the layer-wise schedule: when block l's backward is recorded, its gradients
// start their trip (download -> CPU step on worker threads -> upload) while the GPU goes on with the
// blocks below. An update is applied at the first block boundary at which its upload has been recorded
// (later in the same backward when the CPU keeps up), and at the latest right before block l's next
// forward, which waits for it: no forward ever runs on stale weights. The recorder stays at most
// `leadBlocks` blocks ahead of the GPU so updates get the chance to land inside the backward.
import {
  DownloadRing,
  GpuTimer,
  UploadRing,
  adamw,
  addTimesProjT,
  applyDelta,
  cast,
  createAdamWState,
  expandRows,
  globalNorm,
  type GpuRuntime,
  type Tensor,
  type TraceEvent,
  type Transfer,
} from '@lsp-offload/gpu-dawn';
import { AdamW as CpuAdamW } from '@lsp-offload/cpu-wasm';
import { availableParallelism } from 'node:os';
import type { ParameterSpec } from '../hf/index.js';
import { DenseGradients } from '../model/dense-gradients.js';
import { Transformer, type StepHooks, type TokenBatch } from '../model/transformer.js';
import type { ModelWeights } from '../model/weights.js';
import { checkBudget } from '../planner/budget.js';
import { planTrainerMemory } from '../planner/trainer-plan.js';
import { checkAdapterLimits } from './dispatch-limits.js';
import { DEFAULT_TRAINER_OPTIONS, type TrainerOptions } from './options.js';
import { StepGradScale } from './grad-scale.js';
import { checkLrSchedule, scheduledLr } from './lr-schedule.js';
import { rankProblem } from './rank-check.js';
import {
  createProjectedLayers,
  refitterProjectedLayers,
  releaseProjectedLayers,
  type ProjectedLayer,
} from './projected-layers.js';
import {
  ProjectorRefitter,
  type HeldOutGradients,
  type RefitReport,
} from '../projectors/projector-refitter.js';
import { projectedLayersOf } from '../projectors/projector-groups.js';
import type { RngState } from '../util/rng.js';
import { rowShards, type RowShard } from './row-shards.js';
import { HEAD_UNIT, LspSink, OUTER_UNIT, ZeroSink, type UnitGradients } from './sinks.js';
import { StepTrace, TRACE_PID, TRACE_THREADS } from './trace.js';

export interface StepMetrics {
  step: number;
  /** Mean loss over the step's micro-batches. */
  loss: number;
  /** The learning rate this step used (the schedule's). */
  lr: number;
  /** Global norm of the (mean) gradient before clipping; null unless --max-grad-norm is set. */
  gradNorm: number | null;
  /** Micro-batches (gradient accumulation). */
  microBatches: number;
  tokens: number;
  wallMs: number;
  tokensPerSecond: number;
  bytesToHost: number;
  bytesToDevice: number;
  /** Time the recorder waited for a CPU update before a forward (the GPU may have idled meanwhile). */
  waitForUpdatesMs: number;
  /** Updates applied inside the backward vs deferred to the next step's pre-forward slot. */
  appliedInBackward: number;
  appliedBeforeForward: number;
  /** Summed duration of CPU optimizer steps (they run on worker threads). */
  cpuOptimizerMs: number;
  /** Time CPU optimizer steps ran during this step (on worker threads). */
  workerBusyMs: number;
  /** Time the main thread was not waiting (recording GPU work, moving bytes). */
  mainThreadBusyMs: number;
  /** GPU time of this step's compute passes (timestamp queries; null where the adapter lacks them). */
  gpuBusyMs: number | null;
  /** Wall time minus GPU busy: the GPU waited for the CPU, transfers or the recorder. */
  gpuIdleMs: number | null;
  peakGpuBytes: number;
}

interface PendingUpdate {
  unit: number;
  /** Downloads of this unit's gradients finished (the GPU is past its backward). */
  downloaded: Promise<void>;
  /** Uploads recorded: apply may be recorded now. */
  ready: Promise<void>;
  isReady: boolean;
  apply: () => void;
}

function unitLabel(unit: number): string {
  return unit === OUTER_UNIT ? 'embeddings' : unit === HEAD_UNIT ? 'head' : `L${unit}`;
}

/** Part of a unit's update that goes through download, CPU step and upload on its own. */
interface UpdatePiece {
  names: string[];
  downloads: Transfer[];
  uploads: () => Transfer[];
}

/** Serialises CPU optimizer steps (one runs at a time; each spreads over all worker threads). */
class CpuStepQueue {
  private tail: Promise<unknown> = Promise.resolve();
  busyMs = 0;

  constructor(private readonly opt: CpuAdamW) {}

  step(names: string[], trace?: StepTrace, label = 'AdamW', gradScale = 1): Promise<void> {
    const run = this.tail.then(async () => {
      const t0 = performance.now();
      const report = await this.opt.step({ names, nonFinite: 'skip', gradScale });
      const t1 = performance.now();
      this.busyMs += t1 - t0;
      trace?.add(label, TRACE_THREADS.optimizer, t0, t1, { tensors: names.length });
      if (!report.applied && report.nonFinite.length) {
        throw new Error(
          `non-finite gradients in ${report.nonFinite.map((r) => r.name).join(', ')}: step skipped`,
        );
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
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
  readonly model: Transformer;
  readonly options: TrainerOptions;
  private readonly layers: Map<string, ProjectedLayer>;
  private readonly refitter: ProjectorRefitter | undefined;
  private readonly sink: LspSink | ZeroSink | DenseGradients;
  private cpu?: CpuAdamW;
  private cpuQueue?: CpuStepQueue;
  private down?: DownloadRing;
  private up?: UploadRing;
  private readonly pending = new Map<number, PendingUpdate>();
  /** The row blocks each dense CPU-optimized parameter is stepped in (one block: the whole parameter). */
  private readonly shards = new Map<string, RowShard[]>();
  private readonly gpuState = new Map<string, { m: Tensor; v: Tensor; master?: Tensor }>();
  private stepCount = 0;
  private metrics = this.freshMetrics();
  private timer: GpuTimer | undefined;
  private trace: StepTrace | undefined;
  private traceRequested = false;
  private lastTrace: { trace: StepTrace; startMs: number } | undefined;
  private segmentName: string | undefined;
  private segmentStart = 0;
  /** This step's gradient factor (1 / micro-batches, times the clipping coefficient). */
  private gradScale: StepGradScale | undefined;
  leadBlocks = 2;

  private constructor(
    readonly gpu: GpuRuntime,
    readonly weights: ModelWeights,
    options: TrainerOptions,
  ) {
    this.options = options;
    this.model = new Transformer(gpu, weights, {
      checkpointing: options.checkpointing,
      lossChunkTokens: options.lossChunkTokens,
    });
    if (options.mode === 'lsp' && options.refit) {
      if (options.exactProjectors)
        throw new Error('projector refits and exact projectors exclude each other');
      this.refitter = new ProjectorRefitter(gpu, projectedLayersOf(weights.specs), {
        d: options.rank,
        r: options.nnz,
        alpha: options.refit.alpha,
        sharing: options.refit.sharing,
        checkFreq: options.refit.checkFreq,
        seed: options.seed,
        init: options.projectorInit,
        // one group's gradients at a time bounds the memory a check takes
        layersPerRequest: 1,
      });
      this.layers = refitterProjectedLayers(weights, this.refitter);
    } else {
      this.layers = options.mode === 'lsp' ? createProjectedLayers(gpu, weights, options) : new Map();
    }
    if (options.mode === 'lsp') this.sink = new LspSink(gpu, this.layers, options.nonProjected === 'adamw');
    else if (options.mode === 'zero') this.sink = new ZeroSink(gpu, weights.dtype);
    else this.sink = new DenseGradients(gpu, weights);
    // GPU busy time per step; a runtime holds at most one timer, so share none with other users
    this.timer = gpu.has('timestamp-query') ? tryTimer(gpu) : undefined;
  }

  static async create(
    gpu: GpuRuntime,
    weights: ModelWeights,
    options: Partial<TrainerOptions> = {},
  ): Promise<Trainer> {
    const o: TrainerOptions = { ...DEFAULT_TRAINER_OPTIONS, ...options };
    if (!(['lsp', 'zero', 'native'] as const).includes(o.mode)) {
      throw new Error(`unknown training mode '${o.mode}': use lsp, zero or native`);
    }
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
    const t = new Trainer(gpu, weights, o);
    if (o.mode !== 'native') await t.initOffload(plan.input.stagingSlots, plan.input.stagingChunkBytes);
    return t;
  }

  get step(): number {
    return this.stepCount;
  }

  /** lsp with refits: the refitter's generator state (checkpoints save and restore it). */
  get refitRngState(): RngState | undefined {
    return this.refitter?.rngState;
  }

  restoreRefitRng(s: RngState): void {
    if (!this.refitter)
      throw new Error('this trainer does not refit its projectors: no generator to restore');
    this.refitter.rngState = s;
  }

  /** Continue counting from a restored checkpoint (the next trainStep is step n + 1). */
  restoreStep(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`step must be a non-negative integer, got ${n}`);
    this.stepCount = n;
  }

  /** The CPU optimizer of the offloading modes (its stateDict() holds moments, masters and step counts). */
  get cpuOptimizer(): CpuAdamW | undefined {
    return this.cpu;
  }

  /** lsp: the projected layers with their projector pairs (host copies and GPU tensors). */
  get projectedLayers(): ReadonlyMap<string, ProjectedLayer> {
    return this.layers;
  }

  /** native: the GPU AdamW state per parameter (created at the first step). */
  get gpuOptimizerState(): ReadonlyMap<string, { m: Tensor; v: Tensor; master?: Tensor }> {
    return this.gpuState;
  }

  /** native: create the GPU AdamW state now (e.g. before loading a checkpoint into it). */
  ensureGpuOptimizerState(): void {
    for (const spec of this.weights.specs) {
      if (this.gpuState.has(spec.name)) continue;
      const param = this.weights.get(spec.name);
      this.gpuState.set(spec.name, createAdamWState(this.gpu, param, { master: param.dtype === 'f16' }));
    }
  }

  /** One optimizer step on `batch`, or on the mean gradient of gradAccum micro-batches. */
  async trainStep(batch: TokenBatch | readonly TokenBatch[]): Promise<StepMetrics> {
    const batches: readonly TokenBatch[] = Array.isArray(batch) ? batch : [batch as TokenBatch];
    if (batches.length !== this.options.gradAccum)
      throw new Error(
        `trainStep got ${batches.length} micro-batches; gradient accumulation is set to ${this.options.gradAccum}`,
      );
    const gradScale = new StepGradScale(
      this.gpu,
      batches.length,
      // native clips on the GPU inside its AdamW; the offloading modes measure the norm unit by unit
      this.options.mode === 'native' ? 0 : this.options.maxGradNorm,
      this.weights.config.numLayers + 2,
    );
    this.gradScale = gradScale;
    try {
      return await this.optimizerStep(batches, gradScale);
    } catch (e) {
      gradScale.fail(e);
      throw e;
    }
  }

  private async optimizerStep(
    batches: readonly TokenBatch[],
    gradScale: StepGradScale,
  ): Promise<StepMetrics> {
    const t0 = performance.now();
    this.metrics = this.freshMetrics();
    this.stepCount++;
    this.trace = this.traceRequested ? new StepTrace(this.stepCount) : undefined;
    this.traceRequested = false;
    const workerBusyBefore = this.cpuQueue?.busyMs ?? 0;
    const gpuBefore = this.gpuStepMs();
    this.timer?.begin('step');
    this.segment('record forward');
    const hooks: StepHooks = {
      beforeBlockForward: async (layer) => {
        if (this.options.mode !== 'native') await this.applyBefore(layer);
        this.segment(`record forward L${layer}`);
      },
      afterBlockBackward: async (layer) => {
        if (this.options.mode !== 'native' && this.options.pipelined) await this.afterBlockBackward(layer);
        this.segment(layer > 0 ? `record backward L${layer - 1}` : 'record embedding backward');
      },
      // the head's forward, the loss and the head's backward run before the top block's backward
      beforeHeadForward: async () => {
        if (this.options.mode !== 'native') await this.applyBefore(HEAD_UNIT);
        this.segment(`record head, loss, backward L${this.weights.config.numLayers - 1}`);
      },
    };
    if (this.options.mode !== 'native') hooks.beforeForward = () => this.applyBefore(OUTER_UNIT);
    // gradient accumulation: the micro-batches before the last only add into the sink's gradients
    const losses: Tensor[] = [];
    const accumulating = this.sink as { accumulate: boolean };
    for (const [i, micro] of batches.entries()) {
      const last = i === batches.length - 1;
      accumulating.accumulate = i > 0;
      const { loss } = await this.model.trainStep(
        micro,
        this.sink,
        last ? hooks : { ...hooks, afterBlockBackward: undefined },
      );
      losses.push(loss);
    }
    accumulating.accumulate = false;
    this.segment('after backward');
    let nativeNorm: Tensor | undefined;
    if (this.options.mode === 'native') {
      nativeNorm = this.nativeUpdate(batches.length);
    } else if (this.options.pipelined) {
      this.gpu.submit();
      // the next forward needs the embeddings first and the head last: the embeddings' update goes
      // ahead, the head's has the whole forward to arrive. (Started earlier, in the backward, the head's
      // large gradient would hold up the blocks' transfers in the staging ring.)
      this.startUpdate(OUTER_UNIT);
      this.startUpdate(HEAD_UNIT);
      await this.waiting('gradient norm', () => gradScale.finish());
    } else {
      // reference order: every unit's update completes and is applied before the next step
      this.startUpdate(HEAD_UNIT);
      for (let layer = this.weights.config.numLayers - 1; layer >= 0; layer--) this.startUpdate(layer);
      this.startUpdate(OUTER_UNIT);
      await this.waiting('gradient norm', () => gradScale.finish());
      await this.flush();
    }
    this.timer?.end('step');
    let lossSum = 0;
    for (const loss of losses) {
      lossSum += await this.waiting('read loss', async () => (await this.gpu.read(loss))[0]!);
      loss.release();
    }
    const lossValue = lossSum / losses.length;
    let gradNorm = gradScale.norm;
    if (nativeNorm) {
      gradNorm = (await this.gpu.read(nativeNorm))[0]! / batches.length;
      nativeNorm.release();
    }
    this.segment(undefined);
    const wallMs = performance.now() - t0;
    await this.timer?.settle();
    const gpuBusyMs = this.timer ? this.gpuStepMs() - gpuBefore : null;
    const tokens = batches.reduce((n, b) => n + b.batch * b.seqLen, 0);
    const m = this.metrics;
    if (this.trace) this.lastTrace = { trace: this.trace, startMs: t0 };
    this.trace = undefined;
    return {
      ...m,
      step: this.stepCount,
      loss: lossValue,
      lr: scheduledLr(this.options, this.stepCount),
      gradNorm,
      microBatches: batches.length,
      tokens,
      wallMs,
      tokensPerSecond: (tokens / wallMs) * 1000,
      cpuOptimizerMs: this.cpuQueue?.busyMs ?? 0,
      workerBusyMs: (this.cpuQueue?.busyMs ?? 0) - workerBusyBefore,
      mainThreadBusyMs: wallMs - m.idleMs,
      gpuBusyMs,
      gpuIdleMs: gpuBusyMs === null ? null : Math.max(0, wallMs - gpuBusyMs),
      peakGpuBytes: this.gpu.memory.stats().peakBytes,
    };
  }

  /**
   * lsp with refits: when a check is due after the current step, measure every projector pair on dense
   * gradients of `heldOut` and refit those above alpha, moving their moments (CPU optimizer state) into
   * the new subspace. Returns the report, or undefined when no check was due.
   */
  async maybeRefit(heldOut: readonly TokenBatch[]): Promise<RefitReport | undefined> {
    const refitter = this.refitter;
    if (!refitter || !refitter.due(this.stepCount)) return undefined;
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
        const { loss } = await this.model.trainStep(batch, sink);
        loss.release();
        for (const n of names) out.get(n)!.push(sink.get(n)!);
      }
      await this.gpu.sync('held-out gradients for the projector check');
      return out;
    };
    const cpu = this.cpu!;
    const temporaries = new Map<string, { m: Tensor; v: Tensor }>();
    const report = await refitter.refit(gradients, {
      get: async (name) => {
        const d = this.layers.get(name)!.d;
        const m = this.gpu.tensor(`moments.${name}.m`, 'f32', [d, d], 'optimizer');
        const v = this.gpu.tensor(`moments.${name}.v`, 'f32', [d, d], 'optimizer');
        await Promise.all([
          this.up!.upload(cpu.expAvg(name), m).enqueued,
          this.up!.upload(cpu.expAvgSq(name), v).enqueued,
        ]);
        temporaries.set(name, { m, v });
        return { m, v };
      },
      moved: async (name, mv) => {
        await Promise.all([
          this.down!.download(mv.m, cpu.expAvg(name)).done,
          this.down!.download(mv.v, cpu.expAvgSq(name)).done,
        ]);
        mv.m.release();
        mv.v.release();
        temporaries.delete(name);
      },
    });
    releaseSinks();
    for (const t of temporaries.values()) {
      t.m.release();
      t.v.release();
    }
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
    await Promise.all([...this.pending.values()].map((u) => u.ready.catch(() => undefined)));
    await this.timer?.settle();
    return this.traceEvents(t.trace, t.startMs);
  }

  private traceEvents(trace: StepTrace, startMs: number): TraceEvent[] {
    const gpu = (this.timer?.traceEvents({ pid: TRACE_PID, tid: TRACE_THREADS.gpu }) ?? []).filter(
      (e) => e.ph === 'M' || e.ts >= startMs * 1000 - 1,
    );
    return [...trace.events(), ...gpu];
  }

  private gpuStepMs(): number {
    return this.timer?.regions().find((r) => r.name === 'step')?.totalMs ?? 0;
  }

  /** Close the open main-thread span (recording) and open the next one. */
  private segment(next: string | undefined): void {
    const now = performance.now();
    if (this.trace && this.segmentName)
      this.trace.add(this.segmentName, TRACE_THREADS.main, this.segmentStart, now);
    this.segmentName = next;
    this.segmentStart = now;
  }

  /** Await something the main thread cannot continue without; the time counts as main-thread idle. */
  private async waiting<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const open = this.segmentName;
    this.segment(undefined);
    try {
      return await fn();
    } finally {
      const t1 = performance.now();
      this.metrics.idleMs += t1 - t0;
      this.trace?.add(`wait: ${what}`, TRACE_THREADS.main, t0, t1);
      this.segment(open);
    }
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
    for (const unit of [...this.pending.keys()].sort((a, b) => b - a)) await this.applyBefore(unit);
    await this.gpu.sync('flushing updates');
  }

  async destroy(): Promise<void> {
    await this.flush().catch(() => undefined);
    this.timer?.destroy();
    this.timer = undefined;
    await this.cpu?.destroy();
    await this.down?.close();
    await this.up?.close();
    if (this.refitter) {
      this.refitter.release();
      this.layers.clear();
    } else {
      releaseProjectedLayers(this.layers);
    }
    if (this.sink instanceof DenseGradients) this.sink.release();
    for (const s of this.gpuState.values()) for (const t of [s.m, s.v, s.master]) t?.release();
    this.model.release();
  }

  // ---- offload setup ---------------------------------------------------------------------------------

  private async initOffload(slots: { down: number; up: number }, chunkBytes: number): Promise<void> {
    const o = this.options;
    const threads = o.threads > 0 ? o.threads : availableParallelism();
    this.cpu = new CpuAdamW({
      threads,
      lr: o.lr,
      betas: o.betas,
      eps: o.eps,
      weightDecay: o.weightDecay,
      nonFinite: 'skip',
      // each tensor steps once per optimizer step: its count of completed steps is the step before
      lrSchedule: ({ step }) => scheduledLr(o, step + 1),
    });
    this.cpuQueue = new CpuStepQueue(this.cpu);
    for (const layer of this.layers.values()) {
      this.cpu.addStepOnly(layer.spec.name, layer.d * layer.d, { outDtype: o.stepDtype });
    }
    const trainDense = o.mode === 'zero' || o.nonProjected === 'adamw';
    if (trainDense) {
      for (const spec of this.weights.specs) {
        if (this.layers.has(spec.name)) continue;
        const init = (await this.gpu.read(this.weights.get(spec.name))) as Float32Array;
        const shards = rowShards(spec, o.optimizerShardBytes);
        this.shards.set(spec.name, shards);
        const cols = init.length / spec.shape[0]!;
        for (const shard of shards)
          this.cpu.addParam(shard.name, init.subarray(shard.rowStart * cols, shard.rowEnd * cols), {
            gradDtype: o.mode === 'zero' && spec.role === 'linear' ? this.weights.dtype : 'f32',
            // fp16 weights go back as fp16 bytes, converted inside the AdamW kernel on the workers
            paramF16: this.weights.dtype === 'f16',
          });
      }
    }
    this.down = await DownloadRing.create(this.gpu, {
      label: 'gradients to host',
      slots: slots.down,
      chunkBytes,
    });
    this.up = await UploadRing.create(this.gpu, { label: 'updates to device', slots: slots.up, chunkBytes });
  }

  // ---- the layer-wise schedule ----------------------------------------------------------------------

  private async afterBlockBackward(layer: number): Promise<void> {
    this.gpu.submit();
    this.startUpdate(layer);
    this.applyReady(layer);
    // keep the recorder at most leadBlocks ahead of the GPU
    const ahead = this.pending.get(layer + this.leadBlocks);
    if (ahead) await this.waiting(`GPU (lead of ${this.leadBlocks} blocks)`, () => ahead.downloaded);
    this.applyReady(layer);
  }

  /** Updates whose uploads are recorded go in now (only blocks above `below`, which are done). */
  private applyReady(below: number): void {
    for (const [unit, u] of this.pending) {
      if (unit > below && u.isReady) {
        u.apply();
        this.pending.delete(unit);
        this.metrics.appliedInBackward++;
      }
    }
  }

  /** Before unit's forward: its pending update must be in. */
  private async applyBefore(unit: number): Promise<void> {
    const u = this.pending.get(unit);
    if (!u) return;
    if (!u.isReady) {
      const t0 = performance.now();
      this.gpu.submit(); // let the GPU run what is recorded while we wait
      await this.waiting(`update of ${unitLabel(unit)}`, () => u.ready);
      this.metrics.waitForUpdatesMs += performance.now() - t0;
    }
    u.apply();
    this.pending.delete(unit);
    this.metrics.appliedBeforeForward++;
  }

  private startUpdate(unit: number): void {
    const sink = this.sink as LspSink | ZeroSink;
    const grads: UnitGradients = sink.take(unit);
    if (!grads.compressed.length && !grads.dense.length) return;
    const gradScale = this.gradScale!;
    gradScale.addUnit([...grads.compressed.map((c) => c.s), ...grads.dense.map((d) => d.grad)]);
    const cpu = this.cpu!;
    const down = this.down!;
    // Pieces of the update, each downloaded, stepped on the CPU and uploaded as soon as it can be: the
    // unit's projected layers and small parameters together, and every row block of a sharded parameter
    // on its own, so the blocks of a large one flow through download, CPU step and upload overlapped.
    const whole: UpdatePiece = { names: [], downloads: [], uploads: () => [] };
    const pieces: UpdatePiece[] = [whole];
    const stepTensors: { layer: ProjectedLayer; d: Tensor }[] = [];
    for (const c of grads.compressed) {
      const name = c.layer.spec.name;
      whole.names.push(name);
      whole.downloads.push(down.download(c.s, cpu.grad(name), { label: `S ${name}` }));
    }
    const wholeDense: ParameterSpec[] = [];
    for (const d of grads.dense) {
      const shards = this.shards.get(d.spec.name)!;
      const rowBytes = d.grad.byteLength / d.spec.shape[0]!;
      for (const shard of shards) {
        const dst = d.grad.dtype === 'f16' ? cpu.gradF16(shard.name) : cpu.grad(shard.name);
        const transfer = down.download(d.grad, dst, {
          label: `grad ${shard.name}`,
          srcOffsetBytes: shard.rowStart * rowBytes,
        });
        if (shards.length === 1) {
          whole.names.push(shard.name);
          whole.downloads.push(transfer);
          wholeDense.push(d.spec);
        } else {
          pieces.push({
            names: [shard.name],
            downloads: [transfer],
            uploads: () => [this.uploadParam(d.spec, shard)],
          });
        }
      }
    }
    whole.uploads = () => {
      const uploads: Transfer[] = [];
      for (const c of grads.compressed) {
        const name = c.layer.spec.name;
        const d = this.gpu.tensor(`D.${name}`, this.options.stepDtype, [c.layer.d, c.layer.d], 'gradients');
        const src = this.options.stepDtype === 'f16' ? cpu.outF16(name) : cpu.out(name);
        uploads.push(this.up!.upload(src, d, { label: `D ${name}` }));
        stepTensors.push({ layer: c.layer, d });
      }
      for (const spec of wholeDense) uploads.push(this.uploadParam(spec, this.shards.get(spec.name)![0]!));
      return uploads;
    };
    const transfers = pieces.flatMap((p) => p.downloads);
    for (const t of transfers) this.metrics.bytesToHost += t.bytes;
    const trace = this.trace;
    const label = unitLabel(unit);
    const downloadStart = performance.now();
    const gradTensors = [...grads.compressed.map((c) => c.s), ...grads.dense.map((d) => d.grad)];
    // the gradient buffers may be reused once their copies are recorded
    // (a failed transfer surfaces through `ready`; here it must not become an unhandled rejection)
    void Promise.all(transfers.map((t) => t.enqueued)).then(
      () => {
        for (const t of gradTensors) t.release();
      },
      () => undefined,
    );
    const downloaded = Promise.all(transfers.map((t) => t.done)).then(() => undefined);
    // what will travel back, counted now so it belongs to this step's metrics
    const stepBytes = this.options.stepDtype === 'f16' ? 2 : 4;
    for (const c of grads.compressed) this.metrics.bytesToDevice += c.layer.d * c.layer.d * stepBytes;
    for (const d of grads.dense) this.metrics.bytesToDevice += this.weights.get(d.spec.name).byteLength;
    const producedAt = this.stepCount;
    const update: PendingUpdate = {
      unit,
      downloaded,
      isReady: false,
      ready: Promise.resolve(),
      // rounding seeded by the step that made the update, not the one applying it: a flush (save, eval)
      // that applies it earlier must not change the f16 weights
      apply: () => this.applySteps(stepTensors, producedAt),
    };
    const runPiece = async (piece: UpdatePiece, i: number): Promise<void> => {
      if (!piece.names.length) return;
      await Promise.all(piece.downloads.map((t) => t.done));
      const tag = pieces.length > 1 ? `${label} (${i + 1}/${pieces.length})` : label;
      trace?.add(`download ${tag}`, TRACE_THREADS.transfers, downloadStart, performance.now());
      const factor = await gradScale.factor;
      await this.cpuQueue!.step(piece.names, trace, `AdamW ${tag}`, factor);
      const uploadStart = performance.now();
      const uploads = piece.uploads();
      await Promise.all(uploads.map((t) => t.enqueued));
      trace?.add(`upload ${tag}`, TRACE_THREADS.transfers, uploadStart, performance.now());
    };
    update.ready = (async () => {
      await Promise.all(pieces.map(runPiece));
      update.isReady = true;
    })();
    update.ready.catch(() => undefined); // surfaced by whoever awaits it
    this.pending.set(unit, update);
  }

  /** Fresh fp32 params of one row block from the CPU optimizer into the GPU weights (fp16 as fp16 bytes). */
  private uploadParam(spec: ParameterSpec, shard: RowShard): Transfer {
    const w = this.weights.get(spec.name);
    const src = w.dtype === 'f16' ? this.cpu!.paramF16(shard.name) : this.cpu!.param(shard.name);
    const rowBytes = w.byteLength / spec.shape[0]!;
    return this.up!.upload(src, w, {
      label: `param ${shard.name}`,
      dstOffsetBytes: shard.rowStart * rowBytes,
    });
  }

  /** Record W += L D R^T for each projected layer of a unit (and decoupled weight decay). */
  private applySteps(steps: { layer: ProjectedLayer; d: Tensor }[], step: number): void {
    const gpu = this.gpu;
    const o = this.options;
    for (const { layer, d } of steps) {
      const w = this.weights.get(layer.spec.name);
      const seed = (step * 7919 + layer.spec.layer * 104729 + layer.rows) >>> 0;
      // temporaries go back to the allocator as soon as their last use is recorded (the GPU orders any
      // reuse), so applying many deferred updates in a row never holds more than one layer's worth
      if (o.weightDecay > 0) {
        const copy = gpu.tensor(`wd.${layer.spec.name}`, 'f32', w.shape, 'workspace');
        cast(gpu, w, 'f32', copy);
        applyDelta(gpu, w, copy, {
          alpha: -scheduledLr(o, step) * o.weightDecay,
          seed: (seed ^ 0x9e3779b9) >>> 0,
          step,
        });
        copy.release();
      }
      const d32 = d.dtype === 'f32' ? d : gpu.tensor(`D32.${layer.spec.name}`, 'f32', d.shape, 'workspace');
      if (d.dtype !== 'f32') cast(gpu, d, 'f32', d32);
      const f = gpu.tensor(`F.${layer.spec.name}`, 'f32', [layer.rows, layer.d], 'workspace');
      expandRows(gpu, d32, layer.leftGpu, f);
      addTimesProjT(gpu, w, f, layer.rightGpu, 1, seed);
      f.release();
      if (d32 !== d) d32.release();
      d.release();
    }
  }

  // ---- native ---------------------------------------------------------------------------------------

  /** GPU AdamW over the mean gradient of `microBatches`; returns the gradient-sum norm when clipping. */
  private nativeUpdate(microBatches: number): Tensor | undefined {
    const sink = this.sink as DenseGradients;
    const o = this.options;
    const list = [];
    for (const spec of this.weights.specs) {
      const grad = sink.get(spec.name);
      if (!grad) continue;
      const param = this.weights.get(spec.name);
      let state = this.gpuState.get(spec.name);
      if (!state) {
        state = createAdamWState(this.gpu, param, { master: param.dtype === 'f16' });
        this.gpuState.set(spec.name, state);
      }
      list.push({ param, grad, ...state });
    }
    // clipping: the coefficient comes from the norm on the GPU (no host sync before the step)
    const norm =
      o.maxGradNorm > 0
        ? globalNorm(
            this.gpu,
            list.map((p) => p.grad),
          )
        : undefined;
    adamw(this.gpu, list, {
      lr: scheduledLr(o, this.stepCount),
      beta1: o.betas[0],
      beta2: o.betas[1],
      eps: o.eps,
      weightDecay: o.weightDecay,
      step: this.stepCount,
      gradScale: 1 / microBatches,
      ...(norm && { clip: { norm, maxNorm: o.maxGradNorm } }),
    });
    return norm;
  }

  private freshMetrics(): {
    bytesToHost: number;
    bytesToDevice: number;
    waitForUpdatesMs: number;
    appliedInBackward: number;
    appliedBeforeForward: number;
    idleMs: number;
  } {
    return {
      bytesToHost: 0,
      bytesToDevice: 0,
      waitForUpdatesMs: 0,
      appliedInBackward: 0,
      appliedBeforeForward: 0,
      idleMs: 0,
    };
  }
}
