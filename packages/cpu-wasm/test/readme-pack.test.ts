// The README's example must run as written for a user of the published package: `npm pack` the built
// package, install the tarball offline (it has no dependencies) into a scratch ES-module project and a
// scratch CommonJS project, and run the example in each.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(join(PACKAGE_DIR, 'README.md'), 'utf8');

/** The environment of a plain shell: no npm_* settings inherited from an npm script running the tests. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  env['NO_COLOR'] = '1'; // console.log colours numbers when the runner forces colour
  delete env['FORCE_COLOR'];
  return env;
}

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout: 120_000 });
}

/** `npm pack` a directory into `dest`; returns the tarball's path. */
function pack(dir: string, dest: string): string {
  const out = npm(['pack', dir, '--json', '--pack-destination', dest], dest);
  const [info] = JSON.parse(out.slice(out.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  return join(dest, info!.filename);
}

/** The README's ```js block under `heading` (the first one after it). */
function codeBlock(heading: RegExp): string {
  const at = README.search(heading);
  expect(at, `README heading ${heading}`).toBeGreaterThanOrEqual(0);
  const block = /```js\n([\s\S]*?)```/.exec(README.slice(at))?.[1];
  expect(block, `a js block after ${heading}`).toBeTruthy();
  return block!;
}

/** The example's printed lines: three step reports, a param and a step, the state dict's size. */
function expectExampleOutput(stdout: string): void {
  const out = stdout.trim().split('\n');
  expect(out.slice(0, 3).map((l) => l.split(' ')[0])).toEqual(['1', '2', '3']);
  const [p, d] = out[3]!.split(' ').map(Number);
  expect(p).toBeLessThan(0.5); // moved against the positive gradient
  expect(d).toBeCloseTo(-1e-3, 5); // step-only: -lr * sign(g) while the gradient is constant
  expect(Number(out[4])).toBeGreaterThan(0);
}

describe('README example from the packed package', () => {
  let work: string;
  let tarball: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'cpu-wasm-pack-'));
    tarball = pack(PACKAGE_DIR, work);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('packs the license, README, built code and the wasm module', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/worker.js'])
      expect(files).toContain(`package/${f}`);
    expect(files.some((f) => /^package\/pkg\/.*\.wasm$/.test(f))).toBe(true);
    const pkg = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { license: string };
    expect(pkg.license).toBe('MIT');
    expect(readFileSync(join(PACKAGE_DIR, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
  });

  /** A scratch project of the given module type with the tarballs installed offline. */
  function project(type: 'module' | 'commonjs'): string {
    const dir = join(work, type);
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: `scratch-${type}`, private: true, type }),
    );
    npm(['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], dir); // no registry
    const installed = join(dir, 'node_modules/@lsp-offload/cpu-wasm/package.json');
    expect(
      (JSON.parse(readFileSync(installed, 'utf8')) as { dependencies?: object }).dependencies,
    ).toBeUndefined();
    return dir;
  }

  function run(dir: string, file: string, source: string): string {
    writeFileSync(join(dir, file), source);
    return execFileSync(process.execPath, [file], {
      cwd: dir,
      env: cleanEnv(),
      encoding: 'utf8',
      timeout: 60_000,
    });
  }

  it('runs as written in an ES-module project', () => {
    const example = codeBlock(/^## Example$/m);
    expectExampleOutput(run(project('module'), 'example.js', example));
  });

  it('runs in a CommonJS project the way the README says', () => {
    const wrapper = codeBlock(/^In a CommonJS project/m);
    const body = codeBlock(/^## Example$/m).replace(/^import .*\n/m, '');
    const placeholder = /^ *\/\/ \.\.\. the example above.*$/m;
    expect(wrapper).toMatch(placeholder);
    const source = wrapper.replace(placeholder, body);
    expect(source).not.toMatch(/^import /m);
    expectExampleOutput(run(project('commonjs'), 'example.js', source));
  });
});
