import { Command } from 'commander';
import { infoCommand } from './info.js';
import { tokenizeCommand, type TokenizeOptions } from './tokenize.js';
import { gradsCommand, type GradsCommandOptions } from './grads.js';
import { trainCommand, type TrainCommandOptions } from './train.js';
import { planCommand, type PlanCommandOptions } from './plan.js';
import { benchCommand, type BenchCommandOptions } from './bench.js';
import { generateCommand } from './generate.js';
import { withVersionAndUnknownCommands } from './program-checks.js';
import { addCompareCommand } from './compare.js';
import { BENCH_FLAG_OVERRIDES, addFlags } from './flags.js';
import { explicitOptions } from './resume-flags.js';

export function buildProgram(): Command {
  const program = new Command('lsp-offload')
    .description(
      'Fine-tune LLMs on GPUs too small to hold them (LSP-Offload: learned sparse projectors + layer-wise offload)',
    )
    .showHelpAfterError();
  program
    .command('info', { isDefault: true })
    .description('show the GPU adapter (features, limits, toggles), WASM SIMD/threads support and CPU cores')
    .option('--json', 'print machine-readable JSON')
    .action(async (opts: { json?: boolean }) => {
      process.exitCode = await infoCommand(opts);
    });
  const train = program
    .command('train')
    .description('fine-tune a Hugging Face checkpoint; with no arguments, the built-in demo model and task');
  addFlags(train, [
    'model',
    'data',
    'evalData',
    'mode',
    'gpuMemory',
    'rank',
    'nnz',
    'steps',
    'batch',
    'seq',
    'lr',
    'warmupSteps',
    'lrSchedule',
    'weightDecay',
    'maxGradNorm',
    'gradAccum',
    'dtype',
    'precision',
    'evalEvery',
    'evalBatches',
    'checkpointing',
    'nonProjected',
    'gradDtype',
    'stepDtype',
    'embeddingGrad',
    'threads',
    'stagingChunk',
    'optimizerShard',
    'seed',
    'metricsOut',
    'report',
    'progress',
    'logEvery',
    'invalidLines',
    'eosToken',
    'checkpointDir',
    'saveEvery',
    'keepCheckpoints',
    'resume',
    'export',
    'force',
    'exportDtype',
    'trace',
    'traceStep',
    'refitEvery',
    'alpha',
    'sharing',
    'refitAtStart',
  ]).action(async (opts: TrainCommandOptions, command: Command) => {
    await trainCommand(opts, explicitOptions(command));
  });
  const bench = program
    .command('bench')
    .description('train one random-initialised model in several modes in one process and compare step times');
  addFlags(
    bench,
    [
      'preset',
      'modes',
      'batch',
      'seq',
      'dtype',
      'precision',
      'rank',
      'nnz',
      'steps',
      'warmup',
      'threads',
      'stagingChunk',
      'optimizerShard',
      'checkpointing',
      'nonProjected',
      'gradDtype',
      'stepDtype',
      'embeddingGrad',
      'robustness',
      'out',
      'traceDir',
      'profileKernels',
    ],
    BENCH_FLAG_OVERRIDES,
  ).action(async (opts: BenchCommandOptions) => {
    await benchCommand(opts);
  });
  addCompareCommand(program);
  const plan = program
    .command('plan')
    .description(
      'predict the GPU memory of a training run (by category, vs a budget) and the host memory, before loading anything',
    );
  addFlags(
    plan,
    [
      'model',
      'mode',
      'batch',
      'seq',
      'rank',
      'nnz',
      'dtype',
      'precision',
      'checkpointing',
      'nonProjected',
      'gradDtype',
      'stepDtype',
      'embeddingGrad',
      'gpuMemory',
      'stagingChunk',
      'gradAccum',
      'json',
    ],
    {
      model: {
        flags: '--model <dir|preset>',
        description:
          'Hugging Face model directory (only config.json is read), or a preset (demo, llama-tiny, ...)',
      },
      gpuMemory: { description: 'GPU memory budget to check against, e.g. 4GiB' },
    },
  ).action(async (opts: PlanCommandOptions) => {
    process.exitCode = await planCommand(opts);
  });
  program
    .command('tokenize')
    .description(
      'print the token ids of a text as a JSON array (tokenizer.json of a Hugging Face model directory)',
    )
    .requiredOption('--model <dir>', 'directory with tokenizer.json')
    .requiredOption('--text <string>', 'the text to tokenize')
    .option('--special', 'add the special tokens (BOS/EOS) the model expects')
    .action(async (opts: TokenizeOptions) => {
      console.log(await tokenizeCommand(opts));
    });
  program
    .command('grads')
    .description('write loss, logits and every parameter gradient of one batch (safetensors, HF names)')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json + safetensors)')
    .requiredOption(
      '--inputs <file>',
      'safetensors with input_ids and labels (int, [batch, seq]; labels unshifted, -100 ignored)',
    )
    .requiredOption('--out <file>', 'output safetensors')
    .option('--dtype <f32|f16>', 'weight storage on the GPU', 'f32')
    .option(
      '--precision <f32|mixed>',
      'mixed: f16 activations, loss scale 2^16 (divided out of the gradients written)',
      'f32',
    )
    .option('--checkpointing', 'recompute each block in the backward (gradient checkpointing)')
    .action(async (opts: GradsCommandOptions) => {
      console.log(await gradsCommand(opts));
    });
  program.addCommand(generateCommand());
  return withVersionAndUnknownCommands(program);
}
