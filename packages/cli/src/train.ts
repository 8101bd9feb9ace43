// `lsp-offload train`: fine-tune a Hugging Face checkpoint (or, with no arguments, the built-in demo)
// with a progress bar (rate, ETA, loss), periodic evaluation and a final summary.
import cliProgress from 'cli-progress';
import {
  GpuRuntime,
  LR_SCHEDULES,
  StopRequest,
  TRAIN_MODES,
  formatBytes,
  formatLossScale,
  loadModelConfig,
  readResumePoint,
  resolveWeightDtype,
  runTraining,
  type EvalMetrics,
  type StepMetrics,
  type TrainMode,
  type TrainerOptions,
} from '@lsp-offload/core';
import { CHOICES, int, nonNegative, oneOf, positive, withModelDefaults, transferFormats } from './flags.js';
import { resumeFlagValues } from './resume-flags.js';
import { exitCodeOf, stopOnSignals } from './signals.js';
import { parseSize } from './size.js';

export interface TrainCommandOptions {
  model: string;
  data?: string[];
  evalData?: string[];
  mode: string;
  gpuMemory?: string;
  rank?: string;
  nnz: string;
  steps?: string;
  batch?: string;
  seq?: string;
  lr?: string;
  dtype: string;
  precision: string;
  evalEvery?: string;
  evalBatches: string;
  checkpointing: boolean;
  nonProjected: string;
  gradDtype: string;
  stepDtype: string;
  embeddingGrad: string;
  threads: string;
  stagingChunk: string;
  optimizerShard: string;
  seed: string;
  metricsOut?: string;
  report?: string;
  progress: boolean;
  checkpointDir?: string;
  saveEvery?: string;
  keepCheckpoints: string;
  resume?: string;
  export?: string;
  force?: boolean;
  trace?: string;
  traceStep?: string;
  refitEvery?: string;
  alpha: string;
  sharing: string;
  refitAtStart?: boolean;
  warmupSteps: string;
  lrSchedule: string;
  weightDecay: string;
  maxGradNorm: string;
  gradAccum: string;
  exportDtype?: string;
  logEvery: string;
  invalidLines: string;
  eosToken?: string;
}

/** The trainer options the fine-tuning flags set (validated; the schedule spans --steps). */
function fineTuneOptions(f: TrainCommandOptions, steps: number): Partial<TrainerOptions> {
  return {
    warmupSteps: int('warmup-steps', f.warmupSteps, 0),
    lrSchedule: oneOf('lr-schedule', f.lrSchedule, LR_SCHEDULES),
    totalSteps: steps,
    weightDecay: nonNegative('weight-decay', f.weightDecay),
    maxGradNorm: nonNegative('max-grad-norm', f.maxGradNorm),
    gradAccum: int('grad-accum', f.gradAccum, 1, 'an integer >= 1'),
  };
}

/** Mixed precision's loss scale and skipped steps (nothing for an f32 run that skipped none). */
function describeScale(m: StepMetrics): string {
  const skipped = m.skippedSteps
    ? `, skipped ${m.skippedSteps}${m.nonFiniteGradients ? ' (this one)' : ''}`
    : '';
  return m.lossScale === 1 ? skipped : `, loss scale ${formatLossScale(m.lossScale)}${skipped}`;
}

function describeEval(e: EvalMetrics): string {
  const acc = e.accuracy
    ? `, answer accuracy ${(100 * e.accuracy.tokenAccuracy).toFixed(1)}% tokens / ${(100 * e.accuracy.exactMatch).toFixed(1)}% exact`
    : '';
  return `eval @ step ${e.step}: loss ${e.evalLoss.toFixed(4)}${acc}`;
}

export async function trainCommand(
  asked: TrainCommandOptions,
  explicit: ReadonlySet<string> = new Set(),
): Promise<void> {
  // a resume takes the checkpoint's settings for the flags left out, and refuses those that cannot change
  const point = asked.resume === undefined ? undefined : await readResumePoint(asked.resume);
  const fromCheckpoint = point ? resumeFlagValues(point, asked, explicit) : { values: {}, changed: [] };
  const given = { ...asked, ...fromCheckpoint.values };
  // (without --data the run stops with that message before the model matters)
  const positions =
    given.model === 'demo' || !given.data?.length
      ? undefined
      : (await loadModelConfig(given.model)).maxPositions;
  const opts = withModelDefaults(given, positions);
  const mode = oneOf<TrainMode>('mode', opts.mode, TRAIN_MODES);
  const steps = int('steps', opts.steps);
  const fineTune = fineTuneOptions(opts, steps);
  const keepCheckpoints = int('keep-checkpoints', opts.keepCheckpoints);
  const exportDtype =
    opts.exportDtype === undefined ? undefined : oneOf('export-dtype', opts.exportDtype, CHOICES.exportDtype);
  const logEvery = int('log-every', opts.logEvery);
  const budgetBytes = opts.gpuMemory ? parseSize(opts.gpuMemory) : undefined;
  const gpu = await GpuRuntime.create(budgetBytes === undefined ? {} : { budgetBytes });
  const log = (line: string) => process.stderr.write(`${line}\n`);
  // a bar only on a terminal: piped or redirected, the run prints plain step lines instead of nothing
  const bar =
    opts.progress && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          {
            format:
              'train [{bar}] {value}/{total} steps | loss {loss}{scale} | {tps} tok/s | ETA {eta_formatted}',
            hideCursor: true,
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  const stop = new StopRequest();
  const removeSignalHandlers = stopOnSignals(stop, opts.checkpointDir !== undefined, log);
  try {
    log(
      `adapter: ${gpu.ctx.report.description || gpu.ctx.report.device}${budgetBytes ? `, GPU memory budget ${formatBytes(budgetBytes)}` : ''}`,
    );
    for (const change of fromCheckpoint.changed) log(`resume: ${change}`);
    let started = false;
    const summary = await runTraining(
      gpu,
      {
        model: opts.model,
        ...(opts.data && { data: opts.data }),
        ...(opts.evalData && { evalData: opts.evalData }),
        steps,
        batch: int('batch', opts.batch),
        seqLen: int('seq', opts.seq, 2),
        dtype: resolveWeightDtype(opts.dtype, gpu.has('shader-f16')),
        ...(exportDtype && { exportDtype }),
        invalidLines: oneOf('invalid-lines', opts.invalidLines, CHOICES.invalidLines),
        ...(opts.eosToken !== undefined && { eosToken: opts.eosToken }),
        evalEvery: int('eval-every', opts.evalEvery),
        evalBatches: int('eval-batches', opts.evalBatches),
        ...(opts.metricsOut && { metricsOut: opts.metricsOut }),
        ...(opts.report && { reportPath: opts.report }),
        ...(opts.checkpointDir && { checkpointDir: opts.checkpointDir }),
        ...(opts.saveEvery && { saveEvery: int('save-every', opts.saveEvery) }),
        keepCheckpoints,
        ...(opts.resume && { resume: opts.resume }),
        ...(opts.export && { exportDir: opts.export }),
        force: opts.force === true,
        stop,
        ...(opts.trace && { tracePath: opts.trace }),
        ...(opts.traceStep && { traceStep: int('trace-step', opts.traceStep) }),
        trainer: {
          ...fineTune,
          mode,
          precision: oneOf('precision', opts.precision, CHOICES.precision),
          rank: int('rank', opts.rank),
          nnz: int('nnz', opts.nnz),
          lr: positive('lr', opts.lr),
          checkpointing: opts.checkpointing,
          nonProjected: oneOf('non-projected', opts.nonProjected, CHOICES.nonProjected),
          ...transferFormats(opts),
          threads: int('threads', opts.threads, 0),
          stagingChunkBytes: parseSize(opts.stagingChunk),
          optimizerShardBytes: parseSize(opts.optimizerShard),
          seed: int('seed', opts.seed, 0),
          ...(opts.refitEvery && {
            refit: {
              checkFreq: int('refit-every', opts.refitEvery),
              alpha: positive('alpha', opts.alpha),
              sharing: oneOf('sharing', opts.sharing, CHOICES.sharing),
              atStart: opts.refitAtStart ?? false,
            },
          }),
        },
      },
      {
        onSetup: (m) => log(m),
        onStep: (m) => {
          if (!started) {
            bar?.start(steps, 0, { loss: '-', tps: '-', scale: '' });
            started = true;
          }
          if (bar)
            bar.update(m.step, {
              loss: m.loss.toFixed(4),
              tps: m.tokensPerSecond.toFixed(0),
              scale: describeScale(m),
            });
          else if (m.step % logEvery === 0 || m.step === steps)
            log(
              `step ${m.step}/${steps}: loss ${m.loss.toFixed(4)}, lr ${m.lr.toPrecision(3)}` +
                `${m.gradNorm === null ? '' : `, grad norm ${m.gradNorm.toPrecision(4)}`}${describeScale(m)}, ${m.tokensPerSecond.toFixed(0)} tok/s`,
            );
        },
        onEval: (e) => {
          if (bar && started) bar.stop();
          log(describeEval(e));
          if (bar && started && e.step < steps) bar.start(steps, e.step, { loss: '-', tps: '-', scale: '' });
        },
      },
    );
    const first = summary.evals[0];
    const last = summary.evals[summary.evals.length - 1];
    if (bar && started) bar.stop();
    if (summary.stopped) {
      log(
        `stopped by ${summary.stopped} at step ${summary.finalStep}; ` +
          (summary.checkpoint
            ? `resume with --resume ${opts.checkpointDir ?? summary.checkpoint.dir}`
            : 'nothing was saved (no --checkpoint-dir)'),
      );
      process.exitCode = exitCodeOf(summary.stopped);
    }
    console.log(
      [
        `${summary.stopped ? 'stopped' : 'done'}: ${summary.steps} steps of ${summary.mode} in ${(summary.totalMs / 1000).toFixed(1)} s`,
        `train loss ${summary.firstLoss.toFixed(4)} -> ${summary.lastLoss.toFixed(4)}`,
        first && last ? `eval loss ${first.evalLoss.toFixed(4)} -> ${last.evalLoss.toFixed(4)}` : '',
        last?.accuracy && first?.accuracy
          ? `answer exact match ${(100 * first.accuracy.exactMatch).toFixed(1)}% -> ${(100 * last.accuracy.exactMatch).toFixed(1)}%`
          : '',
        `${summary.meanTokensPerSecond.toFixed(0)} tok/s`,
        `peak GPU memory ${formatBytes(summary.livePeakGpuBytes)} live (planned ${formatBytes(summary.plannedPeakBytes)}), ${formatBytes(summary.peakGpuBytes)} held`,
      ]
        .filter(Boolean)
        .join('; '),
    );
  } finally {
    removeSignalHandlers();
    bar?.stop();
    gpu.destroy();
  }
}
