import { Command } from 'commander';
import { infoCommand } from './info.js';
import { tokenizeCommand, type TokenizeOptions } from './tokenize.js';

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
  return program;
}
