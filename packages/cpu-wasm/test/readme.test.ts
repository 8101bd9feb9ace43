// The README's example must run as written (against the built package).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const README = fileURLToPath(new URL('../README.md', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));

describe('README', () => {
  it('has a runnable example', () => {
    const text = readFileSync(README, 'utf8');
    const example = /## Example\s+```js\n([\s\S]*?)```/.exec(text)?.[1];
    expect(example, 'a ```js block under "## Example"').toBeTruthy();
    const dir = mkdtempSync(join(tmpdir(), 'cpu-wasm-readme-'));
    try {
      const file = join(dir, 'example.mjs');
      writeFileSync(file, example!.replace("'@lsp-offload/cpu-wasm'", `'${pathToFileURL(DIST).href}'`));
      // console.log colours numbers when the runner forces colour (nx does): ask for plain text
      const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
      delete env['FORCE_COLOR'];
      const out = execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000, env })
        .trim()
        .split('\n');
      expect(out.slice(0, 3).map((l) => l.split(' ')[0])).toEqual(['1', '2', '3']);
      const [p, d] = out[3]!.split(' ').map(Number);
      expect(p).toBeLessThan(0.5); // moved against the positive gradient
      expect(d).toBeCloseTo(-1e-3, 5); // step-only: -lr * sign(g) while the gradient is constant
      expect(Number(out[4])).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
