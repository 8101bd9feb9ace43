// `npx lsp-offload` inside the workspace: npm links package.json's "bin" at `npm ci` time, before any
// build, so the bin must be a committed file (a shim that runs dist/bin.js), not a build output.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('..', import.meta.url));
const root = join(cli, '..', '..');
const pkg = JSON.parse(readFileSync(join(cli, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  files: string[];
};

describe('the lsp-offload bin', () => {
  it('is a committed, executable file outside dist/, shipped with the package', () => {
    const target = pkg.bin['lsp-offload']!;
    expect(target).not.toMatch(/dist\//);
    const path = join(cli, target);
    expect(readFileSync(path, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(statSync(path).mode & 0o111).not.toBe(0);
    expect(pkg.files).toContain(target.replace(/^\.\//, '').split('/')[0]);
    const tracked = spawnSync('git', ['ls-files', '--error-unmatch', target], { cwd: cli, encoding: 'utf8' });
    expect(tracked.status, tracked.stderr).toBe(0);
  });

  it('npm linked it: the workspace command runs the built CLI', () => {
    const link = join(root, 'node_modules', '.bin', 'lsp-offload');
    expect(existsSync(link), `${link} (made by npm ci)`).toBe(true);
    const r = spawnSync(link, ['--version'], { encoding: 'utf8' });
    expect([r.status, r.stdout.trim()]).toEqual([0, pkg.version]);
  });

  it('says how to build when dist/ is missing', () => {
    const copy = mkdtempSync(join(tmpdir(), 'shim-'));
    mkdirSync(join(copy, 'bin'));
    copyFileSync(join(cli, pkg.bin['lsp-offload']!), join(copy, 'bin', 'lsp-offload.js'));
    const r = spawnSync(process.execPath, [join(copy, 'bin', 'lsp-offload.js'), '--version'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/the CLI is not built yet: run `npm run build`/);
  });
});
