// `--version`, and a mistyped command named as such: `info` is the default command, so without this
// check `lsp-offload trian` would quietly print the adapter report.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

export function cliVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/** "unknown command 'x' (did you mean ...?)" with the commands there are. */
export function unknownCommandMessage(word: string, commands: readonly string[]): string {
  const closest = [...commands].sort((a, b) => editDistance(word, a) - editDistance(word, b))[0];
  const hint = closest && editDistance(word, closest) <= 2 ? `; did you mean '${closest}'?` : '';
  return `unknown command '${word}' (commands: ${commands.join(', ')})${hint}`;
}

export function withVersionAndUnknownCommands(program: Command): Command {
  program.version(cliVersion(), '-V, --version', 'print the version of lsp-offload');
  const names = program.commands.map((c) => c.name());
  const info = program.commands.find((c) => c.name() === 'info')!;
  info.allowExcessArguments(true);
  info.hook('preAction', (_command, action) => {
    if (action.args.length) throw new Error(unknownCommandMessage(action.args[0]!, names));
  });
  return program;
}
