#!/usr/bin/env node
// Builds native/host-copy.c into dist/native/host-copy.node (the staging rings' parallel copy). Without
// a C compiler it says so and leaves the rings on their main-thread copy; with one, a failure fails the
// build. Usage: node native/build.mjs [package dir]
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const pkgDir = resolve(process.argv[2] ?? '.');
const source = join(pkgDir, 'native', 'host-copy.c');
const outDir = join(pkgDir, 'dist', 'native');
const out = join(outDir, 'host-copy.node');
const cc = process.env.CC ?? 'cc';

if (process.platform === 'win32') {
  console.warn('gpu-dawn: no native host copy on Windows; transfers use the main-thread copy');
  process.exit(0);
}
const probe = spawnSync(cc, ['--version'], { stdio: 'ignore' });
if (probe.error) {
  console.warn(
    `gpu-dawn: no C compiler ('${cc}'): native host copy not built, transfers use the main-thread copy ` +
      '(install gcc, or set CC)',
  );
  process.exit(0);
}
mkdirSync(outDir, { recursive: true });
const flags = ['-O2', '-std=c11', '-Wall', '-Wextra', '-Werror', '-fPIC', '-pthread', '-shared'];
// Node-API symbols are resolved from the node binary when the addon loads
if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');
const r = spawnSync(cc, [...flags, '-fvisibility=hidden', '-o', out, source], { stdio: 'inherit' });
if (r.status !== 0) throw new Error(`gpu-dawn: '${cc}' failed to build ${source} (exit ${r.status})`);
