// The public optimizer: named tensors in shared memories, AdamW steps sharded over a persistent pool
// of worker threads. See README.md for the contract; the math lives in ../crate/src/adamw.rs.
import { availableParallelism } from 'node:os';
import { MemorySet, type MemoryArena } from './arena.js';
import { NonFiniteGradientError, OptimizerDestroyedError, type NonFiniteReport } from './errors.js';
import { DEFAULT_HYPER_PARAMS, mergeHyperParams, writeStepScalars, type HyperParams } from './hyper.js';
import { checkOptionNames, optionNames } from './options.js';
import { concatBytes, type ByteSource } from './safetensors.js';
import { CHECK_BLOCK, MIN_ELEMENTS_PER_WORKER, type Spread } from './plan.js';
import { KernelPool } from './pool.js';
import { clipCoefficient, HYPER_STRIDE } from './protocol.js';
import { checkedUpdate, nonFiniteGradients, streamUpdate, update } from './step-passes.js';
import { decodeState, encodeState } from './state.js';
import {
  NO_WORKER_TIMING,
  epochNowMs,
  mergeWorkerTiming,
  stepTiming,
  type StepTiming,
  type WorkerTiming,
} from './timing.js';
import { TensorRegistry, f32View, type Dtype, type TensorKind, type TensorRecord } from './tensors.js';
import {
  copyGradIn,
  copyOut,
  copyParamF16Out,
  segmentViews,
  singleF32,
  singleU16,
  type SegmentViews,
} from './views.js';
import { mainThreadKernels, type KernelExports } from './wasm.js';

export type NonFinitePolicy = 'throw' | 'skip' | 'propagate';

/** Called once per tensor per step; returns the learning rate to use. */
export type LrSchedule = (ctx: {
  /** Steps this tensor has completed before this one (0 on its first step). */
  step: number;
  group: string;
  name: string;
  /** The group's `lr`. */
  baseLr: number;
}) => number;

export interface AdamWOptions extends Partial<HyperParams> {
  /** Worker threads (default: all cores). */
  threads?: number;
  /** Per-group overrides of the top-level hyper-parameters; the top level is group "default". */
  groups?: Record<string, Partial<HyperParams>>;
  lrSchedule?: LrSchedule;
  /** Clip the gradients of each step() call to this global L2 norm (as torch.nn.utils.clip_grad_norm_). */
  maxGradNorm?: number;
  /**
   * Non-finite gradients: 'throw' (default) a NonFiniteGradientError, or 'skip' the step and report it;
   * either way nothing is changed (a read-only pass over the gradients runs first). 'propagate' skips
   * that pass (about 1/7 less memory traffic) and lets NaN flow into the state, as torch does.
   */
  nonFinite?: NonFinitePolicy;
  /** Bytes per shared memory (a multiple of 64 KiB, at most 4 GiB; default 2 GiB). */
  memoryCapBytes?: number;
  /** Fewest elements worth giving one thread (default 32768); small steps use fewer threads. */
  minElementsPerThread?: number;
  /**
   * Unchecked steps ('propagate', no maxGradNorm) go through the pool's shared work stream (default
   * true): small pieces any worker takes, several steps in flight at once. false: static equal shares,
   * one mailbox task per worker, as checked steps run.
   */
  stream?: boolean;
}

/** Options every tensor takes. */
export interface TensorOptions {
  group?: string;
  /** Gradient dtype: 'f32' (default) or 'f16' (raw IEEE half bits in a Uint16Array). */
  gradDtype?: Dtype;
}

export interface ParamOptions extends TensorOptions {
  /**
   * Also keep an fp16 copy of the params (IEEE half bits, round to nearest even; 2 more bytes per
   * element): set at registration, rewritten by every applied step in the same pass as the update,
   * read with paramF16(name). It is derived state: not in stateDict(), re-made by loadStateDict().
   */
  paramF16?: boolean;
}

export interface StepOnlyOptions extends TensorOptions {
  /** Step output dtype: 'f32' (default) or 'f16'. */
  outDtype?: Dtype;
}

export interface StepOptions {
  /** Step only these tensors (default: all). */
  names?: readonly string[];
  /** Multiplies every gradient (e.g. 1 / loss scale), before the norm is measured and clipped. */
  gradScale?: number;
  /**
   * Per-tensor factors on top of `gradScale` (e.g. the inverse of the scale an fp16 gradient was sent
   * with). Tensors not named get 1. Not with `maxGradNorm` (one clipping norm needs one scale); a checked
   * step then reports no norm.
   */
  gradScales?: Readonly<Record<string, number>>;
  /** Use at most this many of the pool's threads for this step (default: all; fewer: not streamed). */
  threads?: number;
  /** Override the optimizer's non-finite policy for this step. */
  nonFinite?: NonFinitePolicy;
}

export interface StepReport {
  /** False when non-finite gradients made the step be skipped ('skip' policy). */
  applied: boolean;
  /**
   * This step's number among applied step() calls (in call order; an unchecked step, which cannot be
   * skipped, is counted when called: stepCount includes unchecked steps still in flight).
   */
  step: number;
  tensors: number;
  /** Global L2 norm of the scaled gradients, or null when no gradient pass ran ('propagate', no clipping). */
  gradNorm: number | null;
  /** Factor the clipping applied (1 when not clipped). */
  clipCoef: number;
  nonFinite: NonFiniteReport[];
  /** Where the step's wall time went: on the workers, or waiting for the main thread (timing.ts). */
  timing: StepTiming;
}

export interface TensorInfo {
  kind: TensorKind;
  group: string;
  length: number;
  gradDtype: Dtype;
  outDtype: Dtype | null;
  /** Whether the tensor keeps an fp16 copy of its params (addParam's `paramF16`). */
  paramF16: boolean;
  steps: number;
  /** Shared memories the tensor spans (1 unless it is larger than one memory's room). */
  segments: number;
}

const DEFAULT_CAP_BYTES = 2 ** 31;
/** The smallest page size an OS maps: one write per such page commits all of the memory. */
const TOUCH_STRIDE_BYTES = 4096;
const HYPER_OPTIONS = optionNames<HyperParams>({ lr: true, betas: true, eps: true, weightDecay: true });
const ADAMW_OPTIONS = optionNames<AdamWOptions>({
  threads: true,
  lr: true,
  betas: true,
  eps: true,
  weightDecay: true,
  groups: true,
  lrSchedule: true,
  maxGradNorm: true,
  nonFinite: true,
  memoryCapBytes: true,
  minElementsPerThread: true,
  stream: true,
});
const PARAM_OPTIONS = optionNames<ParamOptions>({ group: true, gradDtype: true, paramF16: true });
const STEP_ONLY_OPTIONS = optionNames<StepOnlyOptions>({ group: true, gradDtype: true, outDtype: true });
const STEP_OPTIONS = optionNames<StepOptions>({
  names: true,
  gradScale: true,
  gradScales: true,
  threads: true,
  nonFinite: true,
});
const POLICIES: readonly NonFinitePolicy[] = ['throw', 'skip', 'propagate'];

export class AdamW {
  readonly threads: number;
  private readonly pool: KernelPool;
  private readonly memories: MemorySet;
  private readonly registry: TensorRegistry;
  private readonly groups = new Map<string, HyperParams>();
  private readonly spread: Spread;
  private readonly schedule: LrSchedule | undefined;
  private readonly maxGradNorm: number | undefined;
  private readonly policy: NonFinitePolicy;
  private appliedSteps = 0;
  private readonly useStream: boolean;
  /** Steps running (several unchecked ones may be, on disjoint tensors; a checked one runs alone). */
  private readonly running = new Set<Promise<unknown>>();
  private checkedRunning = false;
  /** Tensors the running steps update: a step naming one of them is refused. */
  private readonly stepping = new Set<TensorRecord>();
  private destroyed = false;
  private broken: Error | null = null;
  /** Main-thread kernel instances, by memory id (for the fp16 param copies made outside a step). */
  private readonly mainKernels = new Map<number, KernelExports>();

  constructor(options: AdamWOptions = {}) {
    checkOptionNames(options, ADAMW_OPTIONS, 'AdamW options');
    for (const [g, patch] of Object.entries(options.groups ?? {}))
      checkOptionNames(patch, HYPER_OPTIONS, `AdamW group "${g}"`);
    const threads = options.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1)
      throw new RangeError(`threads must be a positive integer, got ${threads}`);
    const base = mergeHyperParams(DEFAULT_HYPER_PARAMS, options, 'AdamW options');
    this.groups.set('default', base);
    for (const [g, patch] of Object.entries(options.groups ?? {}))
      this.groups.set(g, mergeHyperParams(base, patch, `AdamW group "${g}"`));
    if (
      options.maxGradNorm !== undefined &&
      !(options.maxGradNorm > 0 && Number.isFinite(options.maxGradNorm))
    )
      throw new RangeError(`maxGradNorm must be a finite number > 0, got ${options.maxGradNorm}`);
    const policy = options.nonFinite ?? 'throw';
    if (!POLICIES.includes(policy))
      throw new RangeError(`nonFinite must be 'throw', 'skip' or 'propagate', got ${policy}`);
    const minElements = options.minElementsPerThread ?? MIN_ELEMENTS_PER_WORKER;
    if (!Number.isInteger(minElements) || minElements < 1)
      throw new RangeError(`minElementsPerThread must be a positive integer, got ${minElements}`);
    if (options.lrSchedule !== undefined && typeof options.lrSchedule !== 'function')
      throw new TypeError('lrSchedule must be a function');
    this.threads = threads;
    this.spread = { threads, minElements };
    this.schedule = options.lrSchedule;
    this.maxGradNorm = options.maxGradNorm;
    this.policy = policy;
    if (options.stream !== undefined && typeof options.stream !== 'boolean')
      throw new TypeError('stream must be a boolean');
    this.useStream = options.stream ?? true;
    this.pool = new KernelPool({ threads });
    try {
      this.memories = new MemorySet({
        capBytes: options.memoryCapBytes ?? DEFAULT_CAP_BYTES,
        reservedBytes: this.pool.firstFreeByte,
        onCreate: (arena) => {
          if (this.pool.attach(arena.memory) !== arena.id)
            throw new Error('cpu-wasm: memory ids out of step');
        },
      });
    } catch (e) {
      void this.pool.destroy();
      throw e;
    }
    this.registry = new TensorRegistry(this.memories, CHECK_BLOCK);
  }

  // ---- registration ----

  /**
   * Register fp32 params (copied from `init`) with zeroed m, v and gradient; with `paramF16`, also their
   * fp16 copy (made here, so it is valid before the first step).
   */
  addParam(name: string, init: ArrayLike<number>, options: ParamOptions = {}): void {
    this.assertIdle('addParam()');
    checkOptionNames(options, PARAM_OPTIONS, `addParam("${name}")`);
    if (init === null || typeof init !== 'object' || typeof init.length !== 'number')
      throw new TypeError(`addParam("${name}"): init must be an array of numbers (e.g. a Float32Array)`);
    const r = this.register(name, 'param', init.length, options, 'f32');
    for (const s of r.segments) {
      const p = f32View(s, s.param);
      if (init instanceof Float32Array) p.set(init.subarray(s.start, s.start + s.length));
      else for (let i = 0; i < s.length; i++) p[i] = init[s.start + i]!;
    }
    this.remakeParamF16([r]);
  }

  /** Register a step-only state (the LSP subspace case): m, v, gradient and step output, no params. */
  addStepOnly(name: string, length: number, options: StepOnlyOptions = {}): void {
    this.assertIdle('addStepOnly()');
    checkOptionNames(options, STEP_ONLY_OPTIONS, `addStepOnly("${name}")`, {
      paramF16: 'paramF16 is for param tensors (step-only ones have no params).',
    });
    this.register(name, 'stepOnly', length, options, options.outDtype ?? 'f32');
  }

  private register(
    name: string,
    kind: TensorKind,
    length: number,
    o: TensorOptions,
    out: Dtype,
  ): TensorRecord {
    const group = o.group ?? 'default';
    if (!this.groups.has(group))
      throw new RangeError(
        `tensor "${name}": unknown group "${group}" (groups: ${[...this.groups.keys()].join(', ')})`,
      );
    // present on ParamOptions only; a JS caller passing it to addStepOnly is refused by the registry
    const paramF16 = (o as ParamOptions).paramF16 ?? false;
    return this.registry.add({
      name,
      kind,
      group,
      length,
      gradDtype: o.gradDtype ?? 'f32',
      outDtype: out,
      paramF16,
    });
  }

  has(name: string): boolean {
    return this.registry.has(name);
  }

  names(): string[] {
    return this.registry.all().map((r) => r.name);
  }

  info(name: string): TensorInfo {
    this.assertUsable('info()');
    const r = this.registry.get(name);
    return {
      kind: r.kind,
      group: r.group,
      length: r.length,
      gradDtype: r.gradDtype,
      outDtype: r.kind === 'stepOnly' ? r.outDtype : null,
      paramF16: r.paramF16,
      steps: r.steps,
      segments: r.segments.length,
    };
  }

  // ---- zero-copy views ----

  /** The fp32 gradient buffer to write before step() (a view into shared memory). */
  grad(name: string): Float32Array {
    const r = this.record(name, 'grad()');
    if (r.gradDtype !== 'f32') throw new TypeError(`tensor "${name}" has fp16 gradients: use gradF16()`);
    return singleF32(r, 'grad', 'grad()');
  }

  /** The fp16 gradient buffer (IEEE half bits) of a tensor registered with gradDtype 'f16'. */
  gradF16(name: string): Uint16Array {
    const r = this.record(name, 'gradF16()');
    if (r.gradDtype !== 'f16') throw new TypeError(`tensor "${name}" has fp32 gradients: use grad()`);
    return singleU16(r, 'grad', 'gradF16()');
  }

  /** The fp32 params of a 'param' tensor, updated in place by step(). */
  param(name: string): Float32Array {
    return singleF32(this.paramTensor(name, 'param()'), 'param', 'param()');
  }

  /**
   * The fp16 copy of the params (IEEE half bits) of a tensor registered with `paramF16: true`: the
   * params rounded to nearest even, rewritten by every applied step. A view into shared memory.
   */
  paramF16(name: string): Uint16Array {
    return singleU16(this.paramF16Tensor(name, 'paramF16()'), 'paramF16', 'paramF16()');
  }

  /** The fp32 step output of a step-only tensor (written by step()). */
  out(name: string): Float32Array {
    const r = this.stepOnly(name, 'out()');
    if (r.outDtype !== 'f32') throw new TypeError(`tensor "${name}" writes fp16 steps: use outF16()`);
    return singleF32(r, 'out', 'out()');
  }

  /** The fp16 step output (IEEE half bits) of a step-only tensor with outDtype 'f16'. */
  outF16(name: string): Uint16Array {
    const r = this.stepOnly(name, 'outF16()');
    if (r.outDtype !== 'f16') throw new TypeError(`tensor "${name}" writes fp32 steps: use out()`);
    return singleU16(r, 'out', 'outF16()');
  }

  expAvg(name: string): Float32Array {
    return singleF32(this.record(name, 'expAvg()'), 'expAvg', 'expAvg()');
  }

  expAvgSq(name: string): Float32Array {
    return singleF32(this.record(name, 'expAvgSq()'), 'expAvgSq', 'expAvgSq()');
  }

  /** Views of every segment: the general form of the accessors above for tensors spanning memories. */
  segments(name: string): SegmentViews[] {
    return segmentViews(this.record(name, 'segments()'));
  }

  /** Copy a whole gradient in (Float32Array for 'f32', Uint16Array of half bits for 'f16'). */
  setGrad(name: string, src: Float32Array | Uint16Array): void {
    copyGradIn(this.record(name, 'setGrad()'), src, 'setGrad()');
  }

  /** Copy the params out (into `dst` if given). */
  readParam(name: string, dst?: Float32Array): Float32Array {
    return copyOut(this.paramTensor(name, 'readParam()'), 'param', dst, 'readParam()');
  }

  /** Copy the fp16 copy of the params out (half bits; into `dst` if given). */
  readParamF16(name: string, dst?: Uint16Array): Uint16Array {
    return copyParamF16Out(this.paramF16Tensor(name, 'readParamF16()'), dst, 'readParamF16()');
  }

  /**
   * Re-make the fp16 copies from the fp32 params, for all tensors that keep one (or the named ones):
   * needed only after writing params directly (param() or segments() views); steps, addParam and
   * loadStateDict keep the copies current themselves.
   */
  refreshParamF16(names?: readonly string[]): void {
    this.assertIdle('refreshParamF16()');
    const records = this.registry.select(names);
    if (names !== undefined) for (const r of records) this.paramF16Tensor(r.name, 'refreshParamF16()');
    this.remakeParamF16(records);
  }

  /** Copy the step output out, as fp32 (fp16 outputs are converted). */
  readOut(name: string, dst?: Float32Array): Float32Array {
    return copyOut(this.stepOnly(name, 'readOut()'), 'out', dst, 'readOut()');
  }

  // ---- hyper-parameters ----

  hyperParams(group = 'default'): HyperParams {
    const hp = this.groups.get(group);
    if (!hp) throw new RangeError(`unknown group "${group}"`);
    return { ...hp, betas: [hp.betas[0], hp.betas[1]] };
  }

  /** Change one group's hyper-parameters from the next step on. */
  setHyperParams(group: string, patch: Partial<HyperParams>): void {
    this.assertIdle('setHyperParams()');
    checkOptionNames(patch, HYPER_OPTIONS, `setHyperParams("${group}")`);
    const hp = this.groups.get(group);
    if (!hp) throw new RangeError(`unknown group "${group}" (groups: ${[...this.groups.keys()].join(', ')})`);
    this.groups.set(group, mergeHyperParams(hp, patch, `setHyperParams("${group}")`));
  }

  get stepCount(): number {
    return this.appliedSteps;
  }

  // ---- the step ----

  /**
   * One AdamW step over all tensors (or `names`). Resolves when every worker is done. Under the default
   * policy, gradients are checked for NaN/Inf first, so a rejected step changes nothing. An unchecked
   * step ('propagate', no maxGradNorm) may be called while other unchecked steps run, on other tensors.
   */
  step(options: StepOptions = {}): Promise<StepReport> {
    const calledAtMs = epochNowMs();
    try {
      this.assertUsable('step()');
      checkOptionNames(options, STEP_OPTIONS, 'step()');
      const records = this.registry.select(options.names);
      const gradScale = options.gradScale ?? 1;
      if (!Number.isFinite(gradScale)) throw new RangeError(`gradScale must be finite, got ${gradScale}`);
      const threads = options.threads ?? this.threads;
      if (!Number.isInteger(threads) || threads < 1 || threads > this.threads)
        throw new RangeError(`threads must be an integer in [1, ${this.threads}], got ${threads}`);
      const policy = options.nonFinite ?? this.policy;
      if (!POLICIES.includes(policy))
        throw new RangeError(`nonFinite must be 'throw', 'skip' or 'propagate', got ${policy}`);
      const checked = policy !== 'propagate' || this.maxGradNorm !== undefined;
      if (this.checkedRunning || (checked && this.running.size))
        throw new Error('step(): a step is still running (await it first)');
      for (const r of records)
        if (this.stepping.has(r))
          throw new Error(
            `step(): tensor "${r.name}" is still being stepped by an earlier step (await it first)`,
          );
      const perTensor = this.perTensorScales(records, options.gradScales);
      const hypers = this.stepScalars(records, gradScale, perTensor);
      const spread = { threads, minElements: this.spread.minElements };
      const streamed = !checked && this.useStream && threads === this.threads;
      // an unchecked step cannot be skipped: it takes its number now, in call order
      const number = checked ? 0 : ++this.appliedSteps;
      const run = this.runStep(
        records,
        hypers,
        gradScale,
        spread,
        policy,
        perTensor !== undefined,
        calledAtMs,
        streamed,
        number,
      );
      this.running.add(run);
      this.checkedRunning = checked;
      for (const r of records) this.stepping.add(r);
      return run.finally(() => {
        this.running.delete(run);
        if (checked) this.checkedRunning = false;
        for (const r of records) this.stepping.delete(r);
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** step()'s gradScales as one factor per record (undefined when none are given). */
  private perTensorScales(
    records: readonly TensorRecord[],
    scales: StepOptions['gradScales'],
  ): number[] | undefined {
    if (scales === undefined) return undefined;
    if (scales === null || typeof scales !== 'object')
      throw new TypeError('step(): gradScales must be an object of tensor name -> factor');
    if (this.maxGradNorm !== undefined)
      throw new RangeError(
        'step(): gradScales cannot be combined with maxGradNorm (clipping measures one norm at one scale)',
      );
    const stepped = new Set(records.map((r) => r.name));
    for (const [name, v] of Object.entries(scales)) {
      if (!stepped.has(name))
        throw new RangeError(`step(): gradScales names "${name}", which this step does not update`);
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new RangeError(`step(): gradScales["${name}"] must be a finite number, got ${v}`);
    }
    return records.map((r) => scales[r.name] ?? 1);
  }

  /** Per-tensor kernel scalars; every lr is computed (and checked) before any pass runs. */
  private stepScalars(
    records: readonly TensorRecord[],
    gradScale: number,
    perTensor: readonly number[] | undefined,
  ): Float64Array {
    const hypers = new Float64Array(records.length * HYPER_STRIDE);
    records.forEach((r, row) => {
      const hp = this.groups.get(r.group)!;
      let lr = hp.lr;
      if (this.schedule) {
        lr = this.schedule({ step: r.steps, group: r.group, name: r.name, baseLr: hp.lr });
        if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0)
          throw new RangeError(
            `lrSchedule returned ${lr} for tensor "${r.name}" (need a finite number >= 0)`,
          );
      }
      writeStepScalars(hypers, row, hp, lr, r.steps + 1, gradScale * (perTensor?.[row] ?? 1));
    });
    return hypers;
  }

  private async runStep(
    records: TensorRecord[],
    hypers: Float64Array,
    gradScale: number,
    spread: Spread,
    policy: NonFinitePolicy,
    perTensorScales: boolean,
    calledAtMs: number,
    streamed: boolean,
    /** The step's number when unchecked (given at the call), else 0 (counted when applied). */
    number: number,
  ): Promise<StepReport> {
    let workers: WorkerTiming;
    const report: StepReport = {
      applied: false,
      step: this.appliedSteps,
      tensors: records.length,
      gradNorm: null,
      clipCoef: 1,
      nonFinite: [],
      timing: stepTiming(calledAtMs, calledAtMs, NO_WORKER_TIMING),
    };
    const checked = policy !== 'propagate' || this.maxGradNorm !== undefined;
    try {
      if (checked) {
        // one dispatch: every worker adds up its gradient blocks, they meet, then update (or all skip)
        const clip =
          this.maxGradNorm !== undefined ? { maxGradNorm: this.maxGradNorm, gradScale } : undefined;
        const group = await checkedUpdate(this.pool, records, spread, {
          hypers,
          skipNonFinite: policy !== 'propagate',
          clip,
        });
        workers = group.timing;
        // (the sum is of the gradients as stored: with per-tensor factors it is no norm of what is stepped)
        if (!perTensorScales) report.gradNorm = Math.sqrt(group.sumOfSquares) * Math.abs(gradScale);
        if (clip) report.clipCoef = clipCoefficient(group.sumOfSquares, gradScale, clip.maxGradNorm);
        if (!group.applied) {
          const count = await nonFiniteGradients(this.pool, records, spread);
          report.nonFinite = count.tensors;
          if (policy === 'throw') throw new NonFiniteGradientError(report.nonFinite);
          report.timing = stepTiming(calledAtMs, epochNowMs(), mergeWorkerTiming(workers, count.timing));
          return report;
        }
      } else if (streamed) workers = await streamUpdate(this.pool, records, hypers);
      else workers = await update(this.pool, records, spread, hypers);
    } catch (e) {
      if (e instanceof NonFiniteGradientError) throw e;
      // Some ranges may have been updated: refuse to continue from an unknown state.
      this.broken = e as Error;
      throw new Error(
        `AdamW step failed in a worker; the optimizer state is now undefined: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    for (const r of records) r.steps++;
    report.applied = true;
    report.step = number || ++this.appliedSteps;
    report.timing = stepTiming(calledAtMs, epochNowMs(), workers);
    return report;
  }

  // ---- state ----

  /** The whole state as safetensors bytes (one buffer; see stateDictParts() for state over ~2 GiB). */
  stateDict(): Uint8Array {
    return concatBytes(this.stateDictParts());
  }

  /** The state as safetensors parts to write in order; tensor parts are views into shared memory. */
  stateDictParts(): Uint8Array[] {
    this.assertIdle('stateDict()');
    return encodeState(this.registry.all(), { step: this.appliedSteps, groups: this.groups });
  }

  /**
   * Restore a stateDict(): the same tensors (names, kinds, lengths) must be registered; everything is
   * checked before anything is written. Takes the bytes, or a ByteSource (e.g. openFileSource(path))
   * for state too large for one buffer.
   */
  loadStateDict(source: Uint8Array | ByteSource): void {
    this.assertIdle('loadStateDict()');
    const pending = decodeState(source, this.registry.all(), new Set(this.groups.keys()));
    pending.apply();
    for (const [g, hp] of pending.groups) this.groups.set(g, hp);
    this.appliedSteps = pending.step;
    // the fp16 param copies are derived state, not saved: re-make them from the loaded params
    this.remakeParamF16(this.registry.all());
  }

  /** Convert params to their fp16 copies on this thread with the SIMD kernel (one pass per segment). */
  private remakeParamF16(records: readonly TensorRecord[]): void {
    for (const r of records) {
      if (!r.paramF16) continue;
      for (const s of r.segments)
        if (s.length > 0) this.kernelsOn(s.arena).f32_to_f16(s.param, s.paramF16, s.length);
    }
  }

  private kernelsOn(arena: MemoryArena): KernelExports {
    let k = this.mainKernels.get(arena.id);
    if (!k) {
      k = mainThreadKernels(arena.memory);
      this.mainKernels.set(arena.id, k);
    }
    return k;
  }

  // ---- lifetime ----

  /**
   * Write every page of the tensors' memory once (each with the value it holds), so the first step and
   * the first transfers into gradients and outputs do not pay for first-touch page faults (5-8x slower
   * than later writes on the H200 host). Call after registering the tensors, before timing matters.
   * Returns the bytes covered.
   */
  touchMemory(): number {
    this.assertIdle('touchMemory()');
    let bytes = 0;
    for (const arena of this.memories.arenas) {
      const u8 = new Uint8Array(arena.memory.buffer);
      const end = arena.reservedBytes + arena.usedBytes;
      for (let i = arena.reservedBytes; i < end; i += TOUCH_STRIDE_BYTES) u8[i] = u8[i]!;
      bytes += arena.usedBytes;
    }
    return bytes;
  }

  /** Memories in use and bytes allocated in each. */
  memoryStats(): { memories: number; capBytes: number; usedBytes: number[] } {
    const arenas = this.memories.arenas;
    return {
      memories: arenas.length,
      capBytes: arenas[0]?.capBytes ?? 0,
      usedBytes: arenas.map((a) => a.usedBytes),
    };
  }

  /** Wait for a running step, then stop the workers. Any later call throws. Views stay readable. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.allSettled([...this.running]);
    await this.pool.destroy();
  }

  private assertUsable(what: string): void {
    if (this.destroyed) throw new OptimizerDestroyedError(what);
    if (this.broken) throw new Error(`${what}: a previous step failed in a worker (${this.broken.message})`);
  }

  private assertIdle(what: string): void {
    this.assertUsable(what);
    if (this.running.size) throw new Error(`${what}: a step is still running (await it first)`);
  }

  private record(name: string, what: string): TensorRecord {
    this.assertUsable(what);
    return this.registry.get(name);
  }

  private stepOnly(name: string, what: string): TensorRecord {
    const r = this.record(name, what);
    if (r.kind !== 'stepOnly')
      throw new TypeError(`tensor "${name}" is a param tensor: it has no step output`);
    return r;
  }

  private paramTensor(name: string, what: string): TensorRecord {
    const r = this.record(name, what);
    if (r.kind !== 'param')
      throw new TypeError(`tensor "${name}" is step-only: it has no params (use out() or readOut())`);
    return r;
  }

  private paramF16Tensor(name: string, what: string): TensorRecord {
    const r = this.paramTensor(name, what);
    if (!r.paramF16)
      throw new TypeError(
        `tensor "${name}" keeps no fp16 copy of its params: register it with addParam(name, init, { paramF16: true })`,
      );
    return r;
  }
}
