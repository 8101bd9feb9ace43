// The root README's usage block runs as written: every command between the readme-commands marker and
// the end of its code block, in a fresh folder that sees the repository's packages/ (for the fixture
// paths), through the lsp-offload command npm linked.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const command = join(root, 'node_modules', '.bin', 'lsp-offload');

/** The block's commands: continuation lines joined, comments dropped, split on spaces (no quoting used). */
function readmeCommands(): string[][] {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const block = text.split('<!-- readme-commands -->')[1]?.split('```sh\n')[1]?.split('```')[0];
  if (!block) throw new Error('README.md has no readme-commands block');
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter(Boolean)
    .map((line) => line.split(/\s+/));
}

describe('README usage', () => {
  it('every command of the usage block runs as written and exits 0', () => {
    const commands = readmeCommands();
    expect(commands.length).toBeGreaterThan(5);
    const cwd = mkdtempSync(join(tmpdir(), 'readme-'));
    symlinkSync(join(root, 'packages'), join(cwd, 'packages'));
    for (const words of commands) {
      expect(words.slice(0, 2), words.join(' ')).toEqual(['npx', 'lsp-offload']);
      const r = spawnSync(command, words.slice(2), { cwd, encoding: 'utf8' });
      expect(r.status, `${words.join(' ')}\n${r.stderr}`).toBe(0);
    }
    for (const made of [
      'demo-ckpt/checkpoint-6/checkpoint.json',
      'demo-out/config.json',
      'demo.html',
      'bench-out/bench.html',
    ])
      expect(existsSync(join(cwd, made)), made).toBe(true);
  });
});
