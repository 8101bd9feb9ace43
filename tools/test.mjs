#!/usr/bin/env node
// Runs every test runner of the project and ends with one line "N passed, N failed" over all of them:
//   1. nx: build, lint and vitest for every package (vitest writes test-results/vitest.json per package)
//   2. cargo test: the Rust crates' native unit tests
// A runner that fails without reporting tests (a build or lint error) counts as one failure, so a run
// that executed nothing can never look green.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const packages = readdirSync(join(root, 'packages')).map((d) => join(root, 'packages', d));
let passed = 0;
let failed = 0;

function step(title, cmd, args, opts = {}) {
  console.log(`\n=== ${title}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8' });
  if (opts.capture && r.stdout) process.stdout.write(r.stdout);
  if (r.error) console.error(`${title}: ${r.error.message}`);
  return r;
}

// 1. nx: stale reports must not be counted (nx restores them from its cache when a test is cached).
for (const p of packages) rmSync(join(p, 'test-results'), { recursive: true, force: true });
const nx = step('build, lint, test (nx)', 'npx', ['nx', 'run-many', '-t', 'build', 'lint', 'test', '--output-style=stream']);
let vitestFiles = 0;
for (const p of packages) {
  const f = join(p, 'test-results', 'vitest.json');
  if (!existsSync(f)) continue;
  const r = JSON.parse(readFileSync(f, 'utf8'));
  vitestFiles++;
  passed += r.numPassedTests;
  failed += r.numFailedTests + (r.numTotalTests - r.numPassedTests - r.numFailedTests); // skipped/todo count as failed
}
if (nx.status !== 0) {
  console.error('nx run-many failed (see above)');
  failed += 1;
}
if (vitestFiles < packages.length) {
  console.error(`only ${vitestFiles} of ${packages.length} packages wrote a vitest report`);
  failed += packages.length - vitestFiles;
}

// 2. cargo test for every crate.
const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' }).status === 0 ? 'cargo' : '/usr/bin/cargo';
for (const p of packages) {
  const manifest = join(p, 'crate', 'Cargo.toml');
  if (!existsSync(manifest)) continue;
  const r = step(`cargo test (${manifest})`, cargo, ['test', '--offline', '--manifest-path', manifest], { capture: true });
  let reported = false;
  for (const m of (r.stdout ?? '').matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
    passed += Number(m[1]);
    failed += Number(m[2]);
    reported = true;
  }
  if (r.status !== 0 && !reported) failed += 1;
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
