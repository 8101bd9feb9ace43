#!/usr/bin/env node
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (e) {
  console.error(`lsp-offload: ${(e as Error).message}`);
  process.exitCode = 1;
}
// Dawn keeps native handles alive; exit explicitly once the command is done.
process.exit(process.exitCode ?? 0);
