import { Command } from 'commander';
import { infoCommand } from './info.js';

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
  return program;
}
