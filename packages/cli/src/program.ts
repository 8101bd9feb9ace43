import { Command } from 'commander';
import { infoCommand } from './info.js';
import { tokenizeCommand, type TokenizeOptions } from './tokenize.js';
import { gradsCommand, type GradsCommandOptions } from './grads.js';
import { trainCommand, type TrainCommandOptions } from './train.js';
import { planCommand, type PlanCommandOptions } from './plan.js';
import { benchCommand, type BenchCommandOptions } from './bench.js';
import { generateCommand } from './generate.js';
import { addFineTuneFlags, type FineTuneFlags } from './finetune-flags.js';
import { withVersionAndUnknownCommands } from './program-checks.js';
import { addCompareCommand } from './compare.js';
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
  addFineTuneFlags(program.command('train'))
    .description('fine-tune a Hugging Face checkpoint; with no arguments, the built-in demo model and task')
    .option('--model <dir|demo>', 'Hugging Face model directory, or demo', 'demo')
    .option('--data <files...>', '.jsonl ({"prompt","response"}, alpaca, {"text"}) or .txt files')
    .option('--eval-data <files...>', 'evaluate on these files instead of a held-out split of --data')
    .option(
      '--mode <lsp|zero|native>',
      'lsp: learned sparse projectors; zero: ZeRO-Offload style; native: all on the GPU',
      'lsp',
    )
    .option('--gpu-memory <size>', 'GPU memory budget, e.g. 4GiB (simulates a smaller card)')
    .option('--rank <d>', 'projector subspace size d (demo: 64, else 256)')
    .option('--nnz <r>', 'non-zeros per projector row r', '4')
    .option('--steps <n>', 'optimizer steps (demo: 60, else 1000)')
    .option('--batch <n>', 'sequences per step (demo: 8, else 4)')
    .option('--seq <n>', "tokens per sequence (demo: 64, else 512 or the model's positions if fewer)")
    .option('--lr <x>', 'learning rate (demo: 3e-3, else 1e-5)')
    .option(
      '--dtype <auto|f16|f32>',
      'weight storage on the GPU (auto: f16 where the adapter has it)',
      'auto',
    )
    .option(
      '--eval-every <n>',
      'evaluate on held-out data every n steps (demo: 20, else 100; at most steps / 3)',
    )
    .option('--eval-batches <n>', 'held-out batches per evaluation', '4')
    .option('--no-checkpointing', 'keep all activations instead of recomputing blocks in the backward')
    .option(
      '--non-projected <frozen|adamw>',
      'lsp: embeddings, norms, biases and lm_head frozen or trained by offloaded AdamW',
      'adamw',
    )
    .option('--threads <n>', 'CPU optimizer threads (0: all cores)', '0')
    .option(
      '--staging-chunk <size>',
      'largest staging buffer of the transfer rings (smaller for small models)',
      '4MiB',
    )
    .option(
      '--optimizer-shard <size>',
      'CPU AdamW steps larger dense parameters in row blocks of this size',
      '32MiB',
    )
    .option('--seed <n>', 'random seed', '0')
    .option('--metrics-out <file.jsonl>', 'write one JSON object per step and per evaluation')
    .option('--report <file.html>', 'write an HTML report of the run (loss, throughput, time, bytes)')
    .option('--no-progress', 'plain log lines instead of a progress bar')
    .option(
      '--checkpoint-dir <dir>',
      'save a checkpoint there (atomically) every --save-every steps and at the end',
    )
    .option('--save-every <n>', 'steps between checkpoints')
    .option('--keep-checkpoints <n>', 'the newest checkpoints kept in --checkpoint-dir', '2')
    .option(
      '--resume <dir>',
      'continue from a checkpoint, or the latest in a --checkpoint-dir (same --model/--data; flags left out take the saved values)',
    )
    .option('--export <dir>', 'write the fine-tuned model as a plain Hugging Face directory at the end')
    .option('--force', 'let --export replace an earlier export (never other files)')
    .option(
      '--trace <file.json>',
      'write a Chrome/Perfetto trace of one step (CPU recording, transfers, optimizer, GPU)',
    )
    .option('--trace-step <n>', 'which step to trace (default: the third)')
    .option('--refit-every <n>', 'lsp: check the projectors every n steps and refit those above --alpha')
    .option('--alpha <e>', 'lsp refits: relative reconstruction error above which a pair is refitted', '0.3')
    .option('--sharing <type|layer>', 'lsp refits: one projector pair per layer type or per layer', 'type')
    .action(async (opts: TrainCommandOptions & FineTuneFlags, command: Command) => {
      await trainCommand(opts, explicitOptions(command));
    });
  program
    .command('bench')
    .description('train one random-initialised model in several modes in one process and compare step times')
    .option(
      '--model <preset>',
      'model shape: a preset (demo, llama-tiny, deepseek-coder-1.3b, tinyllama-1.1b, deepseek-coder-6.7b) or a Hugging Face model directory (its config.json; random weights)',
      'llama-tiny',
    )
    .option(
      '--modes <list>',
      'modes with optional GPU budgets, e.g. lsp:4GiB,zero:4GiB,native',
      'lsp,zero,native',
    )
    .option('--batch <n>', 'sequences per step', '2')
    .option('--seq <n>', "tokens per sequence (default 128, or the model's positions if fewer)")
    .option('--dtype <auto|f16|f32>', 'weight storage (auto: f16 where the adapter has it)', 'auto')
    .option('--rank <d>', 'projector subspace size d', '64')
    .option('--nnz <r>', 'non-zeros per projector row', '4')
    .option('--steps <n>', 'measured steps per mode', '3')
    .option('--warmup <n>', 'unmeasured steps first', '1')
    .option('--threads <n>', 'CPU optimizer threads (0: all cores)', '0')
    .option(
      '--staging-chunk <size>',
      'largest staging buffer of the transfer rings (smaller for small models)',
      '4MiB',
    )
    .option(
      '--optimizer-shard <size>',
      'CPU AdamW steps larger dense parameters in row blocks of this size',
      '32MiB',
    )
    .option('--no-checkpointing', 'keep all activations')
    .option('--no-robustness', "turn off Dawn's bounds clamping in shaders (faster)")
    .option('--out <dir>', 'write bench.json, bench.txt and bench.html there')
    .option('--trace-dir <dir>', "write a Chrome/Perfetto trace of each mode's last step there")
    .option(
      '--profile-kernels',
      'after the measured steps, time every dispatch of one more step: GPU time by kernel family (shares)',
    )
    .action(async (opts: BenchCommandOptions) => {
      await benchCommand(opts);
    });
  addCompareCommand(program);
  program
    .command('plan')
    .description(
      'predict the GPU memory of a training run (by category, vs a budget) and the host memory, before loading anything',
    )
    .option(
      '--model <dir|preset>',
      'Hugging Face model directory (only config.json is read), or a preset (demo, llama-tiny, ...)',
      'demo',
    )
    .option('--mode <lsp|zero|native>', 'training mode', 'lsp')
    .option('--batch <n>', 'sequences per step (demo: 8, else 4)')
    .option('--seq <n>', "tokens per sequence (demo: 64, else 512 or the model's positions if fewer)")
    .option('--rank <d>', 'projector subspace size d (demo: 64, else 256)')
    .option('--nnz <r>', 'non-zeros per projector row r', '4')
    .option(
      '--dtype <auto|f16|f32>',
      'weight storage on the GPU (auto: f16 where the adapter has it)',
      'auto',
    )
    .option('--no-checkpointing', 'keep all activations instead of recomputing blocks in the backward')
    .option(
      '--non-projected <frozen|adamw>',
      'lsp: embeddings, norms, biases and lm_head frozen or trained',
      'adamw',
    )
    .option('--gpu-memory <size>', 'GPU memory budget to check against, e.g. 4GiB')
    .option(
      '--staging-chunk <size>',
      'largest staging buffer of the transfer rings (smaller for small models)',
      '4MiB',
    )
    .option('--json', 'print the plan as JSON')
    .action(async (opts: PlanCommandOptions) => {
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
    .option('--checkpointing', 'recompute each block in the backward (gradient checkpointing)')
    .action(async (opts: GradsCommandOptions) => {
      console.log(await gradsCommand(opts));
    });
  program.addCommand(generateCommand());
  return withVersionAndUnknownCommands(program);
}
