// End-to-end benchmark: the same model and batches trained in several modes, one after another in one
// process, so their times are comparable: step time, tokens/s, ratios lsp/native and zero/lsp, peak GPU
// memory, bytes moved, and where the time went.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import type { ModelConfig } from '../hf/index.js';
import { ModelWeights, type WeightDtype } from '../model/weights.js';
import { Rng } from '../util/rng.js';
import { median } from '../util/stats.js';
import type { TrainMode, TrainerOptions } from '../options/trainer-options.js';
import { Trainer, type StepMetrics } from '../trainer/trainer.js';
import type { CpuStepTiming } from '../trainer/mode-updates.js';
import type { TokenBatch } from '../model/transformer.js';
import { planTrainerMemory } from '../planner/trainer-plan.js';
import { DEFAULT_TRAINER_OPTIONS } from '../options/trainer-options.js';
import { resolvePrecision } from '../model/precision.js';
import { KernelProfiler, formatKernelProfile, type KernelProfile } from './kernel-profile.js';
import { formatOffloadLines, summarizeOffload, type OffloadSummary } from './offload-summary.js';

export interface BenchModeSpec {
  mode: TrainMode;
  /** GPU memory budget in bytes for this mode (undefined: none). */
  budgetBytes?: number;
}

export interface BenchOptions {
  config: ModelConfig;
  modes: BenchModeSpec[];
  batch: number;
  seqLen: number;
  dtype: WeightDtype;
  warmupSteps: number;
  steps: number;
  trainer: Partial<TrainerOptions>;
  /** Dawn's bounds-clamping of shader memory accesses (off is faster; our kernels stay in bounds). */
  robustness?: boolean;
  /** Write a Chrome/Perfetto trace of each mode's last step to `<traceDir>/<mode>[-budget].trace.json`. */
  traceDir?: string;
  /** After the measured steps, one more step with each dispatch timed: GPU time by kernel family. */
  profileKernels?: boolean;
}

export interface BenchModeResult {
  mode: TrainMode;
  budgetBytes?: number;
  /** f32 or mixed (resolved by the adapter). */
  precision: string;
  /** The loss scale of the last step (1 in f32) and the steps skipped for non-finite gradients. */
  lossScale: number;
  skippedSteps: number;
  medianStepMs: number;
  tokensPerSecond: number;
  /** The most bytes the allocator held (live + cached for reuse), and the most ever live at once. */
  peakGpuBytes: number;
  livePeakGpuBytes: number;
  /** The planner's prediction before anything was allocated: live peak, and what an unbudgeted pool holds. */
  predictedPeakBytes: number;
  predictedFootprintBytes: number;
  peakByCategory: Record<string, number>;
  /** Where the time went, per measured step (GPU busy is null without timestamp queries). */
  gpuBusyMsPerStep: number | null;
  mainThreadBusyMsPerStep: number;
  workerBusyMsPerStep: number;
  bytesToHostPerStep: number;
  bytesToDevicePerStep: number;
  waitForUpdatesMsPerStep: number;
  cpuOptimizerMsPerStep: number;
  /**
   * Offloading modes: the CPU optimizer steps per measured step, as the workers saw them (their wall time
   * split into start latency, worker span and notice latency; mode-updates.ts).
   */
  cpuStepTimingPerStep?: CpuStepTiming;
  appliedInBackward: number;
  appliedBeforeForward: number;
  /** Offloading modes: the offload critical path, bytes by kind and the rings' throughput. */
  offload?: OffloadSummary;
  losses: number[];
  /** With profileKernels: the GPU time of one step by kernel family. */
  kernelProfile?: KernelProfile;
  error?: string;
}

function randomBatches(
  config: ModelConfig,
  batch: number,
  seqLen: number,
  count: number,
  seed: number,
): TokenBatch[] {
  const rng = new Rng(seed, 99);
  return Array.from({ length: count }, () => {
    const ids = Int32Array.from({ length: batch * seqLen }, () => rng.below(config.vocabSize));
    return { batch, seqLen, inputIds: ids, labels: ids };
  });
}

export async function runBenchmark(
  o: BenchOptions,
  onProgress?: (line: string) => void,
  onModeDone?: (results: BenchModeResult[]) => Promise<void> | void,
): Promise<BenchModeResult[]> {
  const batches = randomBatches(o.config, o.batch, o.seqLen, o.warmupSteps + o.steps, o.trainer.seed ?? 0);
  const results: BenchModeResult[] = [];
  for (const spec of o.modes) {
    const gpu = await GpuRuntime.create(
      spec.budgetBytes === undefined ? {} : { budgetBytes: spec.budgetBytes },
    );
    const trainerOptions = {
      ...DEFAULT_TRAINER_OPTIONS,
      ...o.trainer,
      mode: spec.mode,
      plannedBatch: { batch: o.batch, seqLen: o.seqLen },
    };
    // the plan needs the precision the trainer will resolve (auto: by the adapter)
    trainerOptions.precision = resolvePrecision(trainerOptions.precision, gpu.has('shader-f16'));
    const plan = planTrainerMemory(o.config, o.dtype, trainerOptions, spec.budgetBytes);
    try {
      const weights = ModelWeights.random(gpu, o.config, o.dtype, new Rng(o.trainer.seed ?? 0, 5));
      const trainer = await Trainer.create(gpu, weights, trainerOptions);
      const measured: StepMetrics[] = [];
      for (let s = 0; s < o.warmupSteps + o.steps; s++) {
        const last = s === o.warmupSteps + o.steps - 1;
        if (last && o.traceDir) trainer.traceNextStep();
        const m = await trainer.trainStep(batches[s]!);
        if (last && o.traceDir) {
          const file = join(
            o.traceDir,
            `${spec.mode}${spec.budgetBytes ? `-${Math.round(spec.budgetBytes / 2 ** 20)}MiB` : ''}.trace.json`,
          );
          await mkdir(o.traceDir, { recursive: true });
          await writeFile(
            file,
            JSON.stringify({ traceEvents: (await trainer.takeTrace()) ?? [], displayTimeUnit: 'ms' }),
          );
        }
        onProgress?.(
          `${spec.mode} step ${s + 1}/${o.warmupSteps + o.steps}: ${m.wallMs.toFixed(0)} ms, loss ${m.loss.toFixed(3)}` +
            (m.nonFiniteGradients ? ` (non-finite gradients: skipped, loss scale ${m.lossScale})` : ''),
        );
        if (s >= o.warmupSteps) measured.push(m);
      }
      await trainer.flush();
      const stats = gpu.memory.stats();
      const steps = measured.length;
      const sum = (f: (m: StepMetrics) => number) => measured.reduce((a, m) => a + f(m), 0);
      const med = median(measured.map((m) => m.wallMs));
      const lastStep = measured[steps - 1]!;
      results.push({
        mode: spec.mode,
        ...(spec.budgetBytes !== undefined && { budgetBytes: spec.budgetBytes }),
        precision: trainerOptions.precision,
        lossScale: lastStep.lossScale,
        skippedSteps: lastStep.skippedSteps,
        medianStepMs: med,
        tokensPerSecond: ((o.batch * o.seqLen) / med) * 1000,
        peakGpuBytes: stats.peakBytes,
        livePeakGpuBytes: stats.livePeakBytes,
        predictedPeakBytes: plan.peakBytes,
        predictedFootprintBytes: plan.footprintBytes,
        peakByCategory: Object.fromEntries(
          Object.entries(stats.byCategory).map(([k, v]) => [k, v.peakBytes]),
        ),
        bytesToHostPerStep: sum((m) => m.bytesToHost) / steps,
        bytesToDevicePerStep: sum((m) => m.bytesToDevice) / steps,
        waitForUpdatesMsPerStep: sum((m) => m.waitForUpdatesMs) / steps,
        cpuOptimizerMsPerStep:
          (measured[steps - 1]!.cpuOptimizerMs - (measured[0]!.cpuOptimizerMs ?? 0)) / Math.max(1, steps - 1),
        appliedInBackward: sum((m) => m.appliedInBackward),
        appliedBeforeForward: sum((m) => m.appliedBeforeForward),
        gpuBusyMsPerStep: measured.every((m) => m.gpuBusyMs !== null)
          ? sum((m) => m.gpuBusyMs ?? 0) / steps
          : null,
        mainThreadBusyMsPerStep: sum((m) => m.mainThreadBusyMs) / steps,
        workerBusyMsPerStep: sum((m) => m.workerBusyMs) / steps,
        ...(spec.mode !== 'native' && {
          offload: summarizeOffload(measured, trainer.transferRates),
          cpuStepTimingPerStep: {
            steps: sum((m) => m.cpuStepTiming.steps) / steps,
            wallMs: sum((m) => m.cpuStepTiming.wallMs) / steps,
            workerSpanMs: sum((m) => m.cpuStepTiming.workerSpanMs) / steps,
            startLatencyMs: sum((m) => m.cpuStepTiming.startLatencyMs) / steps,
            noticeLatencyMs: sum((m) => m.cpuStepTiming.noticeLatencyMs) / steps,
            threadBusyMs: sum((m) => m.cpuStepTiming.threadBusyMs) / steps,
          },
        }),
        losses: measured.map((m) => m.loss),
      });
      await trainer.destroy();
      weights.release();
      if (o.profileKernels)
        results[results.length - 1]!.kernelProfile = await profileModeKernels(
          gpu,
          o,
          trainerOptions,
          batches,
        );
    } catch (e) {
      results.push({
        mode: spec.mode,
        precision: trainerOptions.precision,
        lossScale: NaN,
        skippedSteps: 0,
        medianStepMs: NaN,
        tokensPerSecond: NaN,
        peakGpuBytes: gpu.memory.stats().peakBytes,
        livePeakGpuBytes: gpu.memory.stats().livePeakBytes,
        predictedPeakBytes: plan.peakBytes,
        predictedFootprintBytes: plan.footprintBytes,
        peakByCategory: {},
        gpuBusyMsPerStep: null,
        mainThreadBusyMsPerStep: NaN,
        workerBusyMsPerStep: NaN,
        bytesToHostPerStep: NaN,
        bytesToDevicePerStep: NaN,
        waitForUpdatesMsPerStep: NaN,
        cpuOptimizerMsPerStep: NaN,
        appliedInBackward: 0,
        appliedBeforeForward: 0,
        losses: [],
        error: (e as Error).message,
      });
      onProgress?.(`${spec.mode} failed: ${(e as Error).message}`);
    } finally {
      gpu.destroy();
    }
    await onModeDone?.(results);
  }
  return results;
}

/** A warm-up step, then one step with every dispatch timed on its own (a fresh trainer, no step timer). */
async function profileModeKernels(
  gpu: GpuRuntime,
  o: BenchOptions,
  options: TrainerOptions,
  batches: readonly TokenBatch[],
): Promise<KernelProfile> {
  const profiler = new KernelProfiler(gpu);
  const weights = ModelWeights.random(gpu, o.config, o.dtype, new Rng(o.trainer.seed ?? 0, 5));
  try {
    const trainer = await Trainer.create(gpu, weights, options);
    try {
      await trainer.trainStep(batches[0]!);
      await trainer.flush();
      return await profiler.measure(async () => {
        await trainer.trainStep(batches[Math.min(1, batches.length - 1)]!);
        await trainer.flush();
      });
    } finally {
      await trainer.destroy();
    }
  } finally {
    weights.release();
    profiler.destroy();
  }
}

/** The kernel-family tables of the modes that were profiled. */
export function formatKernelProfiles(results: readonly BenchModeResult[]): string {
  return results
    .filter((r) => r.kernelProfile)
    .map((r) => formatKernelProfile(`GPU time by kernel family, ${r.mode}`, r.kernelProfile!))
    .join('\n\n');
}

/** A short text table with the ratios the project is judged by. */
export function formatBenchTable(
  config: string,
  o: Pick<BenchOptions, 'batch' | 'seqLen' | 'dtype'>,
  results: BenchModeResult[],
  device: string,
): string {
  const precision = [...new Set(results.map((r) => r.precision))].join('/') || '?';
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  const ms = (x: number | null) => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(0));
  const lines = [
    `${config}, batch ${o.batch} x seq ${o.seqLen}, ${o.dtype} weights, ${precision} precision, on ${device} (${new Date().toISOString().slice(0, 10)})`,
    'mode    budget   step ms   tok/s  live MiB (planned)  held MiB (planned)  down MiB/step  up MiB/step  applied bwd/fwd',
  ];
  for (const r of results) {
    if (r.error) {
      lines.push(`${r.mode.padEnd(7)} failed: ${r.error}`);
      continue;
    }
    lines.push(
      [
        r.mode.padEnd(7),
        (r.budgetBytes ? `${mib(r.budgetBytes)}M` : '-').padStart(7),
        r.medianStepMs.toFixed(1).padStart(9),
        r.tokensPerSecond.toFixed(0).padStart(7),
        `${mib(r.livePeakGpuBytes)} (${mib(r.predictedPeakBytes)})`.padStart(19),
        `${mib(r.peakGpuBytes)} (${mib(r.predictedFootprintBytes)})`.padStart(19),
        mib(r.bytesToHostPerStep).padStart(14),
        mib(r.bytesToDevicePerStep).padStart(12),
        `${r.appliedInBackward}/${r.appliedBeforeForward}`.padStart(16),
      ].join(' '),
    );
  }
  lines.push(
    '',
    'where the time went (ms per step): GPU busy, main thread busy, CPU optimizer on workers, forward waited for updates',
  );
  for (const r of results) {
    if (r.error) continue;
    lines.push(
      `${r.mode.padEnd(7)} gpu ${ms(r.gpuBusyMsPerStep).padStart(7)}  main ${ms(r.mainThreadBusyMsPerStep).padStart(7)}  workers ${ms(r.workerBusyMsPerStep).padStart(7)}  wait ${ms(r.waitForUpdatesMsPerStep).padStart(7)}`,
    );
  }
  const cpu = results.filter((r) => !r.error && r.cpuStepTimingPerStep);
  if (cpu.length) {
    // the CPU steps' wall time (about "workers" above) split by the workers' own clock: a notice latency
    // near the wall time means the workers were done long before the busy main thread saw it
    lines.push(
      'CPU optimizer steps (ms per step): wall = start latency + worker span + notice latency; threads busy summed over threads',
    );
    const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-').padStart(8);
    for (const r of cpu) {
      const t = r.cpuStepTimingPerStep!;
      lines.push(
        `${r.mode.padEnd(7)} wall ${f(t.wallMs)}  start ${f(t.startLatencyMs)}  span ${f(t.workerSpanMs)}  notice ${f(t.noticeLatencyMs)}  threads busy ${f(t.threadBusyMs)}  (${t.steps.toFixed(1)} CPU steps)`,
      );
    }
  }
  for (const r of results.filter((r) => r.skippedSteps > 0))
    lines.push(
      `${r.mode}: ${r.skippedSteps} steps skipped for non-finite gradients (loss scale ${r.lossScale})`,
    );
  const by = (m: TrainMode) => results.find((r) => r.mode === m && !r.error);
  const lsp = by('lsp');
  const zero = by('zero');
  const native = by('native');
  if (lsp && native)
    lines.push(`lsp / native step time: ${(lsp.medianStepMs / native.medianStepMs).toFixed(2)}`);
  if (zero && lsp) lines.push(`zero / lsp step time: ${(zero.medianStepMs / lsp.medianStepMs).toFixed(2)}`);
  lines.push(...formatOffloadLines(results));
  return lines.join('\n');
}
