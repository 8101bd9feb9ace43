// `lsp-offload bench`: train the same random-initialised model in several modes, one after another in
// one process, and print step times, tokens/s and the lsp/native and zero/lsp ratios (JSON to --out).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { GpuContext, resolveModelConfig, resolvePrecision, resolveWeightDtype } from '@lsp-offload/core';
import {
  BENCH_DEFAULTS,
  formatBenchTable,
  formatKernelProfiles,
  renderBenchReport,
  runBenchmark,
  TRAIN_MODES,
  type BenchModeSpec,
  type TrainMode,
} from '@lsp-offload/core';
import { CHOICES, int, oneOf, transferFormats } from './flags.js';
import { parseSize } from './size.js';

export interface BenchCommandOptions {
  model: string;
  modes: string;
  batch: string;
  seq?: string;
  dtype: string;
  precision: string;
  rank: string;
  nnz: string;
  steps: string;
  warmup: string;
  threads: string;
  stagingChunk: string;
  optimizerShard: string;
  checkpointing: boolean;
  nonProjected: string;
  gradDtype: string;
  stepDtype: string;
  embeddingGrad: string;
  robustness: boolean;
  out?: string;
  traceDir?: string;
  profileKernels?: boolean;
}

/** "lsp:4GiB,zero:4GiB,native" -> mode specs. */
export function parseModes(text: string): BenchModeSpec[] {
  return text.split(',').map((part) => {
    const [mode, size] = part.trim().split(':') as [string, string | undefined];
    if (!(TRAIN_MODES as readonly string[]).includes(mode))
      throw new Error(`--modes: unknown mode '${mode}' (${TRAIN_MODES.join(', ')})`);
    return { mode: mode as TrainMode, ...(size && { budgetBytes: parseSize(size) }) };
  });
}

export async function benchCommand(o: BenchCommandOptions): Promise<void> {
  const config = await resolveModelConfig(o.model);
  const ctx = await GpuContext.create();
  const device = ctx.report.description || ctx.report.device;
  const dtype = resolveWeightDtype(o.dtype, ctx.has('shader-f16'));
  const precision = resolvePrecision(
    oneOf('precision', o.precision, CHOICES.precision),
    ctx.has('shader-f16'),
  );
  ctx.destroy();
  const cpu = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores)`;
  const options = {
    config,
    modes: parseModes(o.modes),
    batch: int('batch', o.batch),
    seqLen: int('seq', o.seq ?? String(Math.min(BENCH_DEFAULTS.seqLen, config.maxPositions))),
    dtype,
    warmupSteps: int('warmup', o.warmup, 0),
    steps: Math.max(1, int('steps', o.steps, 0)),
    robustness: o.robustness,
    ...(o.traceDir !== undefined && { traceDir: o.traceDir }),
    profileKernels: o.profileKernels ?? false,
    trainer: {
      precision,
      rank: int('rank', o.rank),
      nnz: int('nnz', o.nnz),
      threads: int('threads', o.threads, 0),
      stagingChunkBytes: parseSize(o.stagingChunk),
      optimizerShardBytes: parseSize(o.optimizerShard),
      checkpointing: o.checkpointing,
      lr: BENCH_DEFAULTS.lr,
      nonProjected: oneOf('non-projected', o.nonProjected, CHOICES.nonProjected),
      ...transferFormats(o),
    },
  };
  // results are written after every mode, so a run cut short still leaves what it measured
  const save = async (results: Awaited<ReturnType<typeof runBenchmark>>) => {
    if (!o.out) return;
    const table = formatBenchTable(o.model, options, results, `GPU ${device}, CPU ${cpu}`);
    await mkdir(o.out, { recursive: true });
    await writeFile(
      join(o.out, 'bench.json'),
      JSON.stringify(
        { model: o.model, device, cpu, options: { ...options, config: undefined }, results },
        null,
        2,
      ),
    );
    const kernels = formatKernelProfiles(results);
    await writeFile(join(o.out, 'bench.txt'), `${table}\n${kernels ? `\n${kernels}\n` : ''}`);
    const settings = {
      model: o.model,
      modes: o.modes,
      batch: options.batch,
      seq: options.seqLen,
      dtype,
      precision,
      d: options.trainer.rank,
      r: options.trainer.nnz,
      'gradients down': options.trainer.gradientDtype,
      'D up': options.trainer.stepDtype,
      'embedding gradient': options.trainer.embeddingGradient,
      steps: options.steps,
      warmup: options.warmupSteps,
      CPU: cpu,
      GPU: device,
    };
    await writeFile(
      join(o.out, 'bench.html'),
      renderBenchReport({ model: o.model, device, settings, results }),
    );
  };
  const results = await runBenchmark(options, (line) => process.stderr.write(`${line}\n`), save);
  console.log(formatBenchTable(o.model, options, results, `GPU ${device}, CPU ${cpu}`));
  const kernels = formatKernelProfiles(results);
  if (kernels) console.log(`\n${kernels}`);
}
