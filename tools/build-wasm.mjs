#!/usr/bin/env node
// Builds the Rust crate of a package for wasm32 (simd128, shared imported memory) and writes the
// layout wasm-pack would: <pkg>/pkg/{<name>.wasm, <name>.js, <name>.d.ts, package.json}.
// Toolchain: a rustup toolchain with the wasm32 target if there is one, else Debian's rustc-web route
// (builds `core` with atomics from rust-web-src; crates-io replaced by its vendor dir, offline).
// Usage: node tools/build-wasm.mjs <package dir> [--no-opt]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const pkgDir = resolve(process.argv[2] ?? '.');
const optimize = !process.argv.includes('--no-opt');
const crateDir = join(pkgDir, 'crate');
const cargoToml = readFileSync(join(crateDir, 'Cargo.toml'), 'utf8');
const crateName = /^name\s*=\s*"([^"]+)"/m.exec(cargoToml)?.[1];
if (!crateName) throw new Error(`no package name in ${crateDir}/Cargo.toml`);

const TARGET = 'wasm32-unknown-unknown';
// 4 GiB: the wasm32 ceiling; callers create smaller memories (an import may be smaller than its max).
const MAX_MEMORY_BYTES = 65536 * 65536;
const rustflags = [
  '-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals',
  '-C link-arg=--shared-memory',
  '-C link-arg=--import-memory',
  `-C link-arg=--max-memory=${MAX_MEMORY_BYTES}`,
  // Each worker instance gets its own stack inside the shared memory: the loader sets this global.
  '-C link-arg=--export=__stack_pointer',
  '-C link-arg=--export=__heap_base',
  // The main-thread instance's stack (worker instances get their own slots above __heap_base): our
  // kernels are leaf loops, so 64 KiB instead of the default 1 MiB leaves each memory more room.
  '-C link-arg=-zstack-size=65536',
];

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: crateDir, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.error) throw new Error(`build-wasm: could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`build-wasm: '${cmd} ${args.join(' ')}' exited with ${r.status}`);
}

function rustupHasWasmTarget() {
  try {
    const out = execFileSync('rustup', ['target', 'list', '--installed'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out.split('\n').includes(TARGET);
  } catch {
    return false;
  }
}

function findLld() {
  for (const v of [22, 21, 20, 19, 18, 17, 16]) {
    const p = `/usr/bin/wasm-ld-${v}`;
    if (existsSync(p)) return p;
    const q = `/usr/lib/llvm-${v}/bin/wasm-ld`;
    if (existsSync(q)) return q;
  }
  return null;
}

const common = ['build', '--release', '--target', TARGET, '--lib'];
if (rustupHasWasmTarget()) {
  // rustup route: nightly can rebuild core with atomics; stable's precompiled core lacks them.
  run('cargo', ['+nightly', ...common, '-Zbuild-std=core,panic_abort'], { RUSTFLAGS: rustflags.join(' ') });
} else {
  const vendor = '/usr/lib/rustlib/src/rust/library/vendor';
  for (const p of ['/usr/bin/cargo', '/usr/bin/rustc', vendor]) {
    if (!existsSync(p))
      throw new Error(
        `build-wasm: ${p} is missing; run tools/setup (installs rustc-web, cargo-web, rust-web-src)`,
      );
  }
  const lld = findLld();
  if (!lld) throw new Error('build-wasm: no wasm-ld (lld-NN) found; run tools/setup');
  run(
    '/usr/bin/cargo',
    [
      ...common,
      '--offline',
      '-Zbuild-std=core',
      '--config',
      'source.crates-io.replace-with="debian-rust-src-vendor"',
      '--config',
      `source.debian-rust-src-vendor.directory="${vendor}"`,
      '--config',
      `target.${TARGET}.linker="${lld}"`,
    ],
    { RUSTC: '/usr/bin/rustc', RUSTC_BOOTSTRAP: '1', RUSTFLAGS: rustflags.join(' ') },
  );
}

const built = join(crateDir, 'target', TARGET, 'release', `${crateName}.wasm`);
if (!existsSync(built)) throw new Error(`build-wasm: expected ${built} after cargo build`);
const outDir = join(pkgDir, 'pkg');
mkdirSync(outDir, { recursive: true });
const wasmOut = join(outDir, `${crateName}.wasm`);
copyFileSync(built, wasmOut);

let bytes = readFileSync(wasmOut);
if (optimize) {
  const { default: binaryen } = await import('binaryen');
  const mod = binaryen.readBinary(bytes);
  mod.setFeatures(binaryen.Features.All);
  binaryen.setOptimizeLevel(3);
  binaryen.setShrinkLevel(0);
  mod.optimize();
  if (!mod.validate()) throw new Error('build-wasm: wasm-opt produced an invalid module');
  bytes = Buffer.from(mod.emitBinary());
  mod.dispose();
  writeFileSync(wasmOut, bytes);
}

// Describe the exports so the loader and its types are generated from the module itself.
const module = new WebAssembly.Module(bytes);
const exportsList = WebAssembly.Module.exports(module);
const imports = WebAssembly.Module.imports(module);
const mem = imports.find((i) => i.kind === 'memory');
if (!mem) throw new Error('build-wasm: module does not import its memory (expected --import-memory)');
const fns = exportsList.filter((e) => e.kind === 'function').map((e) => e.name);

writeFileSync(
  join(outDir, `${crateName}.js`),
  `// Generated by tools/build-wasm.mjs. Loads ${crateName}.wasm (imports a shared memory as env.memory).
import { readFileSync } from 'node:fs';
export const wasmUrl = new URL('./${crateName}.wasm', import.meta.url);
export const exportedFunctions = ${JSON.stringify(fns)};
let cached;
/** The compiled module (compiled once per thread; a WebAssembly.Module can be posted to workers). */
export function compileModule() {
  cached ??= new WebAssembly.Module(readFileSync(wasmUrl));
  return cached;
}
/** Instantiate over a shared WebAssembly.Memory. */
export function instantiate(memory, module = compileModule()) {
  return new WebAssembly.Instance(module, { env: { memory } }).exports;
}
`,
);
writeFileSync(
  join(outDir, `${crateName}.d.ts`),
  `// Generated by tools/build-wasm.mjs.
export declare const wasmUrl: URL;
export declare const exportedFunctions: readonly string[];
export declare function compileModule(): WebAssembly.Module;
export interface ${pascal(crateName)}Exports {
${fns.map((f) => `  ${f}: (...args: number[]) => number;`).join('\n')}
  __stack_pointer: WebAssembly.Global;
  __heap_base: WebAssembly.Global;
}
export declare function instantiate(memory: WebAssembly.Memory, module?: WebAssembly.Module): ${pascal(crateName)}Exports;
`,
);
writeFileSync(
  join(outDir, 'package.json'),
  JSON.stringify(
    {
      name: crateName,
      type: 'module',
      files: [`${crateName}.wasm`, `${crateName}.js`, `${crateName}.d.ts`],
      module: `${crateName}.js`,
      types: `${crateName}.d.ts`,
    },
    null,
    2,
  ) + '\n',
);
console.log(`build-wasm: ${wasmOut} (${bytes.length} bytes; exports ${fns.join(', ')})`);

function pascal(s) {
  return s.replace(/(^|_)(\w)/g, (_, __, c) => c.toUpperCase());
}
