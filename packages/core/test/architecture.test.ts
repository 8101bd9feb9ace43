// The package graph is part of the design: cli -> core -> {gpu-dawn, cpu-wasm}, leaves import no package
// of ours. Checked on package.json dependencies and on every import in the sources. Inside core, the
// folders layer too (forbiddenInCore).
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packagesDir = fileURLToPath(new URL('../../', import.meta.url));
const allowed: Record<string, string[]> = {
  'cpu-wasm': [],
  'gpu-dawn': [],
  core: ['gpu-dawn', 'cpu-wasm'],
  cli: ['core'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sourceFiles(p) : /\.(ts|mjs|js)$/.test(f) ? [p] : [];
  });
}

describe('workspace dependency direction', () => {
  it('has exactly the four packages', () => {
    expect(readdirSync(packagesDir).sort()).toEqual(Object.keys(allowed).sort());
  });

  for (const [pkg, deps] of Object.entries(allowed)) {
    it(`${pkg} depends only on ${deps.join(', ') || 'no package of ours'}`, () => {
      const manifest = JSON.parse(readFileSync(join(packagesDir, pkg, 'package.json'), 'utf8'));
      const declared = Object.keys({
        ...manifest.dependencies,
        ...manifest.devDependencies,
        ...manifest.peerDependencies,
      })
        .filter((d) => d.startsWith('@lsp-offload/'))
        .map((d) => d.slice('@lsp-offload/'.length));
      expect(declared.sort()).toEqual([...deps].sort());
      const imported = new Set<string>();
      for (const dir of ['src', 'test', 'bench']) {
        const root = join(packagesDir, pkg, dir);
        if (!existsSync(root)) continue;
        for (const f of sourceFiles(root)) {
          for (const m of readFileSync(f, 'utf8').matchAll(/from\s+'@lsp-offload\/([\w-]+)/g))
            imported.add(m[1]!);
        }
      }
      for (const i of imported) expect(deps, `${pkg} imports @lsp-offload/${i}`).toContain(i);
    });
  }
});

/**
 * core/src/<folder> must not import from core/src/<folder>: (importer, imported) pairs. The planner
 * predicts a run from its options alone; checkpoints and runs are clients of the trainer; the method
 * (projectors) and the model know nothing of the trainer; the HF formats know nothing of the rest.
 */
const forbiddenInCore: [string, string][] = [
  ['planner', 'trainer'],
  ['planner', 'checkpoint'],
  ['trainer', 'checkpoint'],
  ['trainer', 'run'],
  ['projectors', 'trainer'],
  ['model', 'trainer'],
  ['model', 'projectors'],
  ['options', 'trainer'],
  ...['model', 'projectors', 'trainer', 'planner', 'checkpoint', 'run'].map((to): [string, string] => [
    'hf',
    to,
  ]),
];

describe('folder layering inside core', () => {
  const coreSrc = join(packagesDir, 'core', 'src');
  for (const [from, to] of forbiddenInCore) {
    it(`nothing in core/src/${from} imports core/src/${to}`, () => {
      const offending: string[] = [];
      for (const f of sourceFiles(join(coreSrc, from))) {
        for (const m of readFileSync(f, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.[^']*)'/g)) {
          const target = relative(coreSrc, resolve(dirname(f), m[1]!));
          if (target === to || target.startsWith(`${to}/`))
            offending.push(`${relative(coreSrc, f)} -> ${m[1]}`);
        }
      }
      expect(offending).toEqual([]);
    });
  }
});
