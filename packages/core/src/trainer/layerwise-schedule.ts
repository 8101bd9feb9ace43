// The layer-wise schedule of the offloading modes (lsp, zero). When block l's backward is recorded, its
// gradients start their trip (download -> CPU step on worker threads -> upload) while the GPU goes on with
// the blocks below. An update is applied at the first block boundary at which its upload has been recorded
// (later in the same backward when the CPU keeps up), and at the latest right before block l's next
// forward, which waits for it: no forward ever runs on stale weights. The recorder stays at most
// `leadBlocks` blocks ahead of the GPU so updates get the chance to land inside the backward.
// The schedule owns what that takes: the mode's gradient sink, the CPU optimizer and its step queue, the
// staging rings both ways, the pending updates, and the row blocks large dense parameters are stepped in.
// Each CPU step multiplies its gradients by the step's factor (grad-scale.ts: 1 / micro-batches, times
// the clipping coefficient, over the loss scale); with clipping the factor is known, and CPU steps start,
// only once the whole backward has handed over its gradients. How the gradients travel (the non-finite
// count that lets the CPU steps run unchecked, fp16 with per-tensor scales, the embedding's touched rows)
// is gradient-wire.ts; each piece's bytes and CPU time feed the offload critical path
// (offload-critical-path.ts).
// Non-finite gradients (a loss-scale overflow in mixed precision) never reach weights or moments: each
// unit's gradients are counted on the GPU before they travel, into the unit's header (the unit's own
// decision) and into the step's count (the loss scale's, loss-scaler.ts); a unit whose own count is
// non-zero skips its CPU step and upload; its weights, moments and step counts stay as they were. The
// other units of that step still step: their gradients are finite (an overflow in block l also leaves
// every unit below it non-finite, since the backward carries it down). GradScaler would skip the whole
// step; holding every update until the step's count is known would stop the updates from overlapping the
// backward, which is the schedule's point. The learning rate follows the trainer's step either way.
import {
  DEFAULT_COPY_THREADS,
  DEFAULT_HOST_COPY,
  DownloadRing,
  UploadRing,
  type GpuRuntime,
  type StagingRingOptions,
  type Tensor,
  type Transfer,
} from '@lsp-offload/gpu-dawn';
import { AdamW as CpuAdamW } from '@lsp-offload/cpu-wasm';
import { availableParallelism } from 'node:os';
import type { ParameterSpec } from '../hf/index.js';
import type { ModelWeights } from '../model/weights.js';
import type { TrainerOptions } from '../options/trainer-options.js';
import { DEFAULT_LEAD_BLOCKS, UPLOAD_AHEAD_BLOCKS } from '../planner/plan-input.js';
import type { ProjectorPair } from '../projectors/projector-pair.js';
import type { LayerMoments, MomentAccess } from '../projectors/projector-refitter.js';
import { StepGradScale } from './grad-scale.js';
import type { LossScaler } from './loss-scaler.js';
import { scheduledLr } from './lr-schedule.js';
import { CpuStepQueue } from './cpu-step-queue.js';
import type { CpuStepTiming, ModeUpdates } from './mode-updates.js';
import { rowShards, type RowShard } from './row-shards.js';
import {
  GradientWire,
  compactRowIds,
  touchedRows,
  type GradientKind,
  type OutgoingGradient,
} from './gradient-wire.js';
import type { OffloadPiece } from './offload-critical-path.js';
import { HEAD_UNIT, LspSink, OUTER_UNIT, ZeroSink, type UnitGradients } from './sinks.js';
import type { StepRecorder } from './step-recorder.js';
import { TRACE_THREADS } from './trace.js';
import { probeTransferRates } from './transfer-probe.js';

/**
 * The rings' host side as measured fastest on the H200 host (gpu-dawn README, 2026-12-03): native copies
 * off the main thread on 4 threads (the planner gives 4 MiB chunks and at least 8 slots where it can).
 */
const RING_OPTIONS: StagingRingOptions = { hostCopy: DEFAULT_HOST_COPY, copyThreads: DEFAULT_COPY_THREADS };

interface PendingUpdate {
  unit: number;
  /** Downloads of this unit's gradients finished (the GPU is past its backward). */
  downloaded: Promise<void>;
  /** The CPU steps are done (their results wait in the optimizer's host memory until uploaded). */
  stepped: Promise<void>;
  /** Uploads recorded: apply may be recorded now. */
  ready: Promise<void>;
  isReady: boolean;
  apply: () => void;
  /** Let a step D that missed the backward go up now (its block's forward is near). */
  release: () => void;
}

function unitLabel(unit: number): string {
  return unit === OUTER_UNIT ? 'embeddings' : unit === HEAD_UNIT ? 'head' : `L${unit}`;
}

/** Part of a unit's update that goes through download, CPU step and upload on its own. */
interface UpdatePiece {
  names: string[];
  downloads: Transfer[];
  /** Host work between the downloads and the CPU step (scattering touched rows). */
  lands: (() => void)[];
  uploads: () => Transfer[];
  /** Its entry in the step's offload timeline (bytes now, CPU time once it ran). */
  timeline: OffloadPiece;
}

/** The staging rings' geometry (the planner sizes them for leadBlocks + 1 blocks in flight). */
export interface StagingGeometry {
  slots: { down: number; up: number };
  chunkBytes: number;
}

export class LayerwiseSchedule implements ModeUpdates {
  readonly sink: LspSink | ZeroSink;
  /** The recorder runs at most this many blocks ahead of the GPU. */
  leadBlocks = DEFAULT_LEAD_BLOCKS;
  private readonly queue: CpuStepQueue;
  private readonly pending = new Map<number, PendingUpdate>();
  /** This step's gradient factor (1 / micro-batches, times the clipping coefficient). */
  private gradScale: StepGradScale | undefined;
  private readonly wire: GradientWire;
  /** lsp with embeddingGradient 'rows': the token embedding, and the rows this step touches. */
  private readonly rowsSpec: ParameterSpec | undefined;
  private rows: { ids: Int32Array; capacity: number } | undefined;
  /** Between the first block's backward and the end of the backward: step Ds go up as they are made. */
  private inBackward = false;

  private constructor(
    private readonly gpu: GpuRuntime,
    private readonly weights: ModelWeights,
    private readonly options: TrainerOptions,
    /** lsp: the projected layers' pairs (compress in the sink, apply here). */
    private readonly layers: ReadonlyMap<string, ProjectorPair>,
    private readonly recorder: StepRecorder,
    /** The CPU optimizer (its stateDict() holds moments, masters and step counts). */
    readonly cpuOptimizer: CpuAdamW,
    /** The row blocks each dense CPU-optimized parameter is stepped in (one block: the whole parameter). */
    private readonly shards: ReadonlyMap<string, RowShard[]>,
    private readonly down: DownloadRing,
    private readonly up: UploadRing,
    private readonly scaler: LossScaler,
    queue: CpuStepQueue,
  ) {
    this.sink =
      options.mode === 'lsp'
        ? new LspSink(gpu, layers, options.nonProjected === 'adamw')
        : new ZeroSink(gpu, weights.dtype);
    this.queue = queue;
    this.wire = new GradientWire(gpu, cpuOptimizer, down, halfGradients(options));
    this.rowsSpec = rowsGradientSpec(weights, options);
  }

  /**
   * The CPU optimizer (step-only subspace AdamW for the projected layers, full AdamW on fp32 masters for
   * the dense parameters it trains) and the staging rings.
   */
  static async create(
    gpu: GpuRuntime,
    weights: ModelWeights,
    o: TrainerOptions,
    layers: ReadonlyMap<string, ProjectorPair>,
    recorder: StepRecorder,
    staging: StagingGeometry,
    scaler: LossScaler,
  ): Promise<LayerwiseSchedule> {
    const threads = o.threads > 0 ? o.threads : availableParallelism();
    const half = halfGradients(o);
    let queue: CpuStepQueue | undefined = undefined;
    const cpu = new CpuAdamW({
      threads,
      lr: o.lr,
      betas: o.betas,
      eps: o.eps,
      weightDecay: o.weightDecay,
      // the GPU counts non-finite gradients (gradient-wire.ts): the steps need no checking pass
      nonFinite: 'propagate',
      // fp16 subspace steps come out in units of the learning rate (the apply multiplies by it); the
      // others take the rate of the trainer step that made the gradients (a tensor whose update was
      // skipped for non-finite gradients has completed fewer steps, but the schedule goes on, as torch's)
      lrSchedule: ({ step, name }) =>
        unitSteps(o) && layers.has(name) ? 1 : scheduledLr(o, queue?.stepOfGradients || step + 1),
    });
    queue = new CpuStepQueue(cpu);
    for (const layer of layers.values()) {
      cpu.addStepOnly(layer.spec.name, layer.d * layer.d, {
        outDtype: o.stepDtype,
        gradDtype: half ? 'f16' : 'f32',
      });
    }
    const shardsByName = new Map<string, RowShard[]>();
    const trainDense = o.mode === 'zero' || o.nonProjected === 'adamw';
    if (trainDense) {
      for (const spec of weights.specs) {
        if (layers.has(spec.name)) continue;
        const init = (await gpu.read(weights.get(spec.name))) as Float32Array;
        const shards = rowShards(spec, o.optimizerShardBytes);
        shardsByName.set(spec.name, shards);
        const cols = init.length / spec.shape[0]!;
        for (const shard of shards)
          cpu.addParam(shard.name, init.subarray(shard.rowStart * cols, shard.rowEnd * cols), {
            gradDtype: o.mode === 'zero' && spec.role === 'linear' ? weights.dtype : half ? 'f16' : 'f32',
            // fp16 weights go back as fp16 bytes, converted inside the AdamW kernel on the workers
            paramF16: weights.dtype === 'f16',
          });
      }
    }
    const down = await DownloadRing.create(gpu, {
      ...RING_OPTIONS,
      label: 'gradients to host',
      slots: staging.slots.down,
      chunkBytes: staging.chunkBytes,
    });
    const up = await UploadRing.create(gpu, {
      ...RING_OPTIONS,
      label: 'updates to device',
      slots: staging.slots.up,
      chunkBytes: staging.chunkBytes,
    });
    // commit the optimizer's pages now (the first step would pay for their faults), then measure the
    // rings into that memory
    cpu.touchMemory();
    const largest = weights.specs.reduce((a, b) =>
      weights.get(b.name).byteLength > weights.get(a.name).byteLength ? b : a,
    );
    const rates = await probeTransferRates(
      gpu,
      down,
      up,
      weights.get(largest.name),
      cpu
        .names()
        .flatMap((n) =>
          cpu.segments(n).map((s) => new Uint8Array(s.grad.buffer, s.grad.byteOffset, s.grad.byteLength)),
        ),
    );
    recorder.transferRates = rates;
    return new LayerwiseSchedule(
      gpu,
      weights,
      o,
      layers,
      recorder,
      cpu,
      shardsByName,
      down,
      up,
      scaler,
      queue,
    );
  }

  get cpuBusyMs(): number {
    return this.queue.busyMs;
  }

  get cpuStepTiming(): Readonly<CpuStepTiming> {
    return this.queue.timing;
  }

  beginStep(microBatches: number, inputIds?: readonly ArrayLike<number>[]): void {
    if (this.sink instanceof ZeroSink) this.sink.microBatches = microBatches;
    const vocab = this.weights.config.vocabSize;
    // the most rows a step of this size can touch: the rows' GPU buffers keep one size across steps
    const tokens = inputIds?.reduce((n, ids) => n + ids.length, 0) ?? 0;
    this.rows =
      this.rowsSpec && inputIds
        ? { ids: touchedRows(inputIds, vocab), capacity: Math.min(vocab, tokens) }
        : undefined;
    if (this.sink instanceof LspSink) {
      // (the GPU orders any reuse after the commands of the step that used them)
      for (const t of this.sink.compactRows?.ids ?? []) t.release();
      this.sink.compactRows = undefined;
      const rows = this.rows;
      if (rows && this.rowsSpec && inputIds)
        // the embedding backward writes the touched rows only: [capacity, hidden], not the vocabulary's
        this.sink.compactRows = {
          spec: this.rowsSpec,
          capacity: rows.capacity,
          ids: inputIds.map((ids, i) => {
            const t = this.gpu.tensor(
              `embedding row ids (micro-batch ${i})`,
              'i32',
              [ids.length],
              'gradients',
            );
            this.gpu.write(t, compactRowIds(ids, rows.ids, vocab));
            return t;
          }),
        };
    }
    this.gradScale = new StepGradScale(
      this.gpu,
      microBatches,
      this.options.maxGradNorm,
      // one sum of squares per unit: every block, the embeddings and the head
      this.weights.config.numLayers + 2,
      this.scaler.scale,
    );
  }

  /** The step's factor; only a step in progress has one. */
  private get stepScale(): StepGradScale {
    if (!this.gradScale) throw new Error('layer-wise schedule: an update started outside a training step');
    return this.gradScale;
  }

  /** Before unit's forward: its pending update must be in (and the next few may start going up). */
  async beforeForward(unit: number): Promise<void> {
    this.releaseUploads(unit);
    const u = this.pending.get(unit);
    if (!u) return;
    if (!u.isReady) {
      const t0 = performance.now();
      this.gpu.submit(); // let the GPU run what is recorded while we wait
      await this.recorder.waiting(`update of ${unitLabel(unit)}`, () => u.ready);
      this.recorder.counters.waitForUpdatesMs += performance.now() - t0;
    }
    u.apply();
    this.pending.delete(unit);
    this.recorder.counters.appliedBeforeForward++;
  }

  async afterBlockBackward(layer: number): Promise<void> {
    if (!this.options.pipelined) return;
    this.inBackward = true;
    this.gpu.submit();
    this.start(layer);
    this.applyReady(layer);
    // keep the recorder at most leadBlocks ahead of the GPU
    const ahead = this.pending.get(layer + this.leadBlocks);
    if (ahead) await this.recorder.waiting(`GPU (lead of ${this.leadBlocks} blocks)`, () => ahead.downloaded);
    this.applyReady(layer);
  }

  async afterBackward(): Promise<void> {
    if (this.options.pipelined) {
      // every block is done: what is up goes in now rather than holding its D until the next forward;
      // Ds made from here on wait on the host until their block's forward is near
      this.applyReady(-1, this.weights.config.numLayers);
      this.inBackward = false;
      this.gpu.submit();
      // the next forward needs the embeddings first and the head last: the embeddings' update goes
      // ahead, the head's has the whole forward to arrive. (Started earlier, in the backward, the head's
      // large gradient would hold up the blocks' transfers in the staging ring.)
      this.start(OUTER_UNIT);
      this.start(HEAD_UNIT);
      this.scaler.endStep();
      await this.recorder.waiting('gradient norm', () => this.stepScale.finish());
    } else {
      // reference order: every unit's update completes and is applied before the next step
      this.start(HEAD_UNIT);
      for (let layer = this.weights.config.numLayers - 1; layer >= 0; layer--) this.start(layer);
      this.start(OUTER_UNIT);
      this.scaler.endStep();
      await this.recorder.waiting('gradient norm', () => this.stepScale.finish());
      await this.flush();
    }
  }

  async gradNorm(): Promise<number | null> {
    return this.gradScale?.norm ?? null;
  }

  failStep(e: unknown): void {
    this.gradScale?.fail(e);
  }

  async flush(): Promise<void> {
    for (const unit of [...this.pending.keys()].sort((a, b) => b - a)) await this.beforeForward(unit);
    await this.gpu.sync('flushing updates');
  }

  async settled(): Promise<void> {
    await Promise.all([...this.pending.values()].map((u) => u.stepped.catch(() => undefined)));
  }

  /** Forward order: the embeddings, every block, the head. Lets `unit` and the next few upload. */
  private releaseUploads(unit: number): void {
    const L = this.weights.config.numLayers;
    const first = unit === OUTER_UNIT ? 0 : unit === HEAD_UNIT ? L : unit;
    this.pending.get(unit)?.release();
    for (let l = first; l < Math.min(L, first + UPLOAD_AHEAD_BLOCKS + 1); l++) this.pending.get(l)?.release();
  }

  /**
   * The moments of projected layers on the GPU for a refit: `get` uploads a layer's CPU moments into
   * temporaries, `moved` downloads the moved ones back; release() frees what is left.
   */
  refitMoments(): MomentAccess & { release(): void } {
    const cpu = this.cpuOptimizer;
    const temporaries = new Map<string, LayerMoments>();
    return {
      get: async (name) => {
        const layer = this.layers.get(name);
        if (!layer) throw new Error(`refit: '${name}' is not a projected layer`);
        const m = this.gpu.tensor(`moments.${name}.m`, 'f32', [layer.d, layer.d], 'optimizer');
        const v = this.gpu.tensor(`moments.${name}.v`, 'f32', [layer.d, layer.d], 'optimizer');
        await Promise.all([
          this.up.upload(cpu.expAvg(name), m).enqueued,
          this.up.upload(cpu.expAvgSq(name), v).enqueued,
        ]);
        temporaries.set(name, { m, v });
        return { m, v };
      },
      moved: async (name, mv) => {
        await Promise.all([
          this.down.download(mv.m, cpu.expAvg(name)).done,
          this.down.download(mv.v, cpu.expAvgSq(name)).done,
        ]);
        mv.m.release();
        mv.v.release();
        temporaries.delete(name);
      },
      release: () => {
        for (const t of temporaries.values()) {
          t.m.release();
          t.v.release();
        }
        temporaries.clear();
      },
    };
  }

  async destroy(): Promise<void> {
    await this.cpuOptimizer.destroy();
    await this.down.close();
    await this.up.close();
  }

  /** Updates whose uploads are recorded go in now (only blocks above `below`, which are done). */
  private applyReady(below: number, end = HEAD_UNIT + 1): void {
    for (const [unit, u] of this.pending) {
      if (unit > below && unit < end && u.isReady) {
        u.apply();
        this.pending.delete(unit);
        this.recorder.counters.appliedInBackward++;
      }
    }
  }

  /** Start a unit's update: its gradients go down, through the CPU optimizer and back up. */
  private start(unit: number): void {
    const grads: UnitGradients = this.sink.take(unit);
    if (!grads.compressed.length && !grads.dense.length) return;
    const gradScale = this.stepScale;
    const gradTensors = [...grads.compressed.map((c) => c.s), ...grads.dense.map((d) => d.grad)];
    gradScale.addUnit(gradTensors);
    // the step's count for the loss scale, before the wire packs (and releases) the gradients; the
    // wire counts the unit's own into its header, which decides whether the unit steps
    this.scaler.countNonFinite(gradTensors);
    const rec = this.recorder;
    const label = unitLabel(unit);
    // what travels: each S whole; each dense gradient whole or as touched rows, cut into its row blocks
    const outgoing: OutgoingGradient[] = [
      ...grads.compressed.map((c): OutgoingGradient => ({
        label: c.layer.spec.name,
        kind: 'S',
        grad: c.s,
        targets: [{ name: c.layer.spec.name, rowStart: 0, rowEnd: c.layer.d }],
      })),
      ...grads.dense.map((d): OutgoingGradient => ({
        label: d.spec.name,
        kind: 'gradients',
        grad: d.grad,
        targets: this.shardsOf(d.spec).map((s) => ({ name: s.name, rowStart: s.rowStart, rowEnd: s.rowEnd })),
        ...(d.spec === this.rowsSpec && this.rows && { rows: this.rows.ids }),
      })),
    ];
    const sent = this.wire.send(label, outgoing);
    for (const [kind, bytes] of Object.entries(sent.bytes))
      if (bytes) rec.countBytes(kind as GradientKind, 'toHost', bytes);
    // Pieces of the update, each downloaded, stepped on the CPU and uploaded as soon as it can be: the
    // unit's projected layers and small parameters together, and every row block of a sharded parameter
    // on its own, so the blocks of a large one flow through download, CPU step and upload overlapped.
    const stepTensors: { layer: ProjectorPair; d: Tensor }[] = [];
    const piece = (tag: string): UpdatePiece => ({
      names: [],
      downloads: [],
      lands: [],
      uploads: () => [],
      timeline: { label: tag, bytesDown: 0, cpuMs: 0, bytesUp: 0 },
    });
    const whole = piece(label);
    whole.timeline.bytesDown += sent.header.bytes;
    const pieces: UpdatePiece[] = [whole];
    const wholeDense: { spec: ParameterSpec; shard: RowShard }[] = [];
    // arrivals come in the order of `outgoing` and its targets: the loops below take them in that order
    const arrivals = sent.arrivals.values();
    // (the row blocks of gathered rows share one transfer: its bytes go to the first block's piece)
    const timed = new Set<Transfer>();
    const arrive = (p: UpdatePiece): void => {
      const a = arrivals.next().value!;
      p.names.push(a.name);
      for (const t of a.transfers) {
        if (!p.downloads.includes(t)) p.downloads.push(t);
        if (!timed.has(t)) p.timeline.bytesDown += t.bytes;
        timed.add(t);
      }
      if (a.land) p.lands.push(a.land);
    };
    const stepBytes = this.options.stepDtype === 'f16' ? 2 : 4;
    for (const c of grads.compressed) {
      arrive(whole);
      whole.timeline.bytesUp += c.layer.d * c.layer.d * stepBytes;
    }
    const shardBytes = (spec: ParameterSpec, shard: RowShard) =>
      ((shard.rowEnd - shard.rowStart) * this.weights.get(spec.name).byteLength) / spec.shape[0]!;
    for (const d of grads.dense) {
      const shards = this.shardsOf(d.spec);
      for (const shard of shards) {
        const p = shards.length === 1 ? whole : piece('');
        arrive(p);
        p.timeline.bytesUp += shardBytes(d.spec, shard);
        if (p === whole) wholeDense.push({ spec: d.spec, shard });
        else {
          p.uploads = () => [this.uploadParam(d.spec, shard)];
          pieces.push(p);
        }
      }
    }
    pieces.forEach((p, i) => {
      if (pieces.length > 1) p.timeline.label = `${label} (${i + 1}/${pieces.length})`;
    });
    whole.uploads = () => {
      const uploads: Transfer[] = [];
      for (const c of grads.compressed) {
        const name = c.layer.spec.name;
        const d = this.gpu.tensor(`D.${name}`, this.options.stepDtype, [c.layer.d, c.layer.d], 'gradients');
        const src =
          this.options.stepDtype === 'f16' ? this.cpuOptimizer.outF16(name) : this.cpuOptimizer.out(name);
        uploads.push(this.up.upload(src, d, { label: `D ${name}` }));
        stepTensors.push({ layer: c.layer, d });
      }
      for (const { spec, shard } of wholeDense) uploads.push(this.uploadParam(spec, shard));
      return uploads;
    };
    // what will travel back, counted now so it belongs to this step's metrics
    for (const c of grads.compressed) rec.countBytes('D', 'toDevice', c.layer.d * c.layer.d * stepBytes);
    for (const d of grads.dense)
      rec.countBytes('parameters', 'toDevice', this.weights.get(d.spec.name).byteLength);
    const trace = rec.trace;
    const downloadStart = performance.now();
    const stepped = pieces.filter((p) => p.names.length);
    for (const p of stepped) rec.offloadPieces.push(p.timeline);
    const downloaded = Promise.all([
      sent.header.done,
      ...stepped.flatMap((p) => p.downloads.map((t) => t.done)),
    ]).then(() => undefined);
    // surfaced by whoever awaits it; after a failed step (the rings aborted) nobody may, and an
    // unhandled rejection would end the process (a bench would lose the modes after the failed one)
    downloaded.catch(() => undefined);
    const producedAt = rec.step;
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const update: PendingUpdate = {
      unit,
      downloaded,
      stepped: Promise.resolve(),
      isReady: false,
      ready: Promise.resolve(),
      // rounding seeded by the step that made the update, not the one applying it: a flush (save, eval)
      // that applies it earlier must not change the f16 weights
      apply: () => this.applySteps(stepTensors, producedAt),
      release,
    };
    const hasSteps = grads.compressed.length > 0;
    const cpuSteps: Promise<void>[] = [];
    const runPiece = async (p: UpdatePiece, cpuDone: () => void): Promise<void> => {
      await Promise.all([sent.header.done, ...p.downloads.map((t) => t.done)]);
      const tag = p.timeline.label;
      trace?.add(`download ${tag}`, TRACE_THREADS.transfers, downloadStart, performance.now());
      const bad = sent.nonFiniteCount();
      if (bad > 0) {
        // not stepped, not uploaded: the unit's weights and moments stay as they were
        const now = performance.now();
        trace?.add(`skipped ${tag}: ${bad} non-finite`, TRACE_THREADS.optimizer, now, now);
        cpuDone();
        return;
      }
      const landStart = performance.now();
      for (const land of p.lands) land();
      const landMs = performance.now() - landStart;
      const factor = await gradScale.factor;
      // the CPU stage of the offload timeline is serial: it charges each step what no earlier one overlapped
      await this.queue.step(
        p.names,
        trace,
        `AdamW ${tag}`,
        factor,
        sent.gradScales(p.names),
        producedAt,
        (ownMs) => (p.timeline.cpuMs = landMs + ownMs),
      );
      cpuDone();
      // a step D made after the backward waits on the host until its block's forward is near
      if (p === whole && hasSteps && !this.inBackward) await released;
      const uploadStart = performance.now();
      const uploads = p.uploads();
      await Promise.all(uploads.map((t) => t.enqueued));
      trace?.add(`upload ${tag}`, TRACE_THREADS.transfers, uploadStart, performance.now());
    };
    const running = stepped.map((p) => {
      let cpuDone = (): void => undefined;
      cpuSteps.push(new Promise<void>((resolve) => (cpuDone = resolve)));
      return runPiece(p, cpuDone);
    });
    update.ready = (async () => {
      await Promise.all(running);
      update.isReady = true;
    })();
    update.ready.catch(() => undefined); // surfaced by whoever awaits it
    // (a piece that fails before its CPU step is done leaves `stepped` to `ready`'s failure)
    update.stepped = Promise.race([Promise.all(cpuSteps).then(() => undefined), update.ready]);
    update.stepped.catch(() => undefined);
    this.pending.set(unit, update);
  }

  private shardsOf(spec: ParameterSpec): RowShard[] {
    const shards = this.shards.get(spec.name);
    if (!shards) throw new Error(`no CPU optimizer state for '${spec.name}'`);
    return shards;
  }

  /** Fresh fp32 params of one row block from the CPU optimizer into the GPU weights (fp16 as fp16 bytes). */
  private uploadParam(spec: ParameterSpec, shard: RowShard): Transfer {
    const w = this.weights.get(spec.name);
    const cpu = this.cpuOptimizer;
    const src = w.dtype === 'f16' ? cpu.paramF16(shard.name) : cpu.param(shard.name);
    const rowBytes = w.byteLength / spec.shape[0]!;
    return this.up.upload(src, w, {
      label: `param ${shard.name}`,
      dstOffsetBytes: shard.rowStart * rowBytes,
    });
  }

  /**
   * Record W += L D R^T for each projected layer of a unit (and decoupled weight decay); fp16 steps are
   * in units of the step's learning rate.
   */
  private applySteps(steps: { layer: ProjectorPair; d: Tensor }[], step: number): void {
    const o = this.options;
    const lr = scheduledLr(o, step);
    for (const { layer, d } of steps) {
      layer.apply(this.weights.get(layer.spec.name), d, step, {
        ...(o.weightDecay > 0 && { decay: lr * o.weightDecay }),
        ...(unitSteps(o) && { scale: lr }),
      });
      d.release();
    }
  }
}

/** lsp's gradients travel as fp16 with per-tensor scales (zero keeps ZeRO-Offload's format). */
function halfGradients(o: TrainerOptions): boolean {
  return o.mode === 'lsp' && o.gradientDtype === 'f16';
}

/** lsp's fp16 subspace steps are in units of the learning rate. */
function unitSteps(o: TrainerOptions): boolean {
  return o.mode === 'lsp' && o.stepDtype === 'f16';
}

/** The token embedding when lsp sends its gradient as the touched rows (not when tied to the LM head). */
function rowsGradientSpec(weights: ModelWeights, o: TrainerOptions): ParameterSpec | undefined {
  if (o.mode !== 'lsp' || o.nonProjected !== 'adamw' || o.embeddingGradient !== 'rows') return undefined;
  if (weights.config.tieWordEmbeddings) return undefined;
  return weights.specs.find((s) => s.role === 'embedding' && s.module !== 'wpe');
}
