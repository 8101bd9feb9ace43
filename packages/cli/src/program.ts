import { Command } from 'commander';
import { infoCommand } from './info.js';
import { tokenizeCommand, type TokenizeOptions } from './tokenize.js';
import { gradsCommand, type GradsCommandOptions } from './grads.js';

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
  return program;
}
