// Every place a training run will write, checked before anything is loaded or trained: a run of hours
// must not end in "cannot write" (the export and the checkpoint folder above all), and must never
// overwrite files it did not write.
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { exportTargetProblem } from '../checkpoint/export-target.js';
import { MANIFEST_FILE } from '../checkpoint/manifest.js';
import { LOCK_FILE } from './run-lock.js';

export interface OutputTargets {
  readonly model: string;
  readonly resume?: string;
  readonly exportDir?: string;
  readonly force?: boolean;
  readonly checkpointDir?: string;
  readonly metricsOut?: string;
  readonly reportPath?: string;
  readonly tracePath?: string;
}

export class OutputTargetError extends Error {
  constructor(flag: string, path: string, problem: string) {
    super(`${flag} ${path}: ${problem}`);
    this.name = 'OutputTargetError';
  }
}

/** Throws an OutputTargetError naming the flag and the path of the first target that cannot be written. */
export async function checkOutputTargets(t: OutputTargets): Promise<void> {
  const files: [string, string | undefined][] = [
    ['--metrics-out', t.metricsOut],
    ['--report', t.reportPath],
    ['--trace', t.tracePath],
  ];
  const seen = new Map<string, string>();
  for (const [flag, path] of files) {
    if (path === undefined) continue;
    const earlier = seen.get(resolve(path));
    if (earlier) throw new OutputTargetError(flag, path, `is also the ${earlier} file`);
    seen.set(resolve(path), flag);
    checkFileTarget(flag, path);
  }
  if (t.checkpointDir !== undefined) await checkCheckpointFolder(t.checkpointDir, t.resume);
  if (t.exportDir !== undefined) {
    const problem = await exportTargetProblem(t.exportDir, {
      force: t.force ?? false,
      protectedDirs: {
        '--model': t.model === 'demo' ? undefined : t.model,
        '--resume': t.resume,
        '--checkpoint-dir': t.checkpointDir,
      },
    });
    if (problem) throw new OutputTargetError('--export', t.exportDir, problem);
    checkCreatable('--export', t.exportDir);
  }
}

/** A file the run writes (replacing it): not a folder, and its folder can be made and written. */
function checkFileTarget(flag: string, path: string): void {
  if (existsSync(path) && statSync(path).isDirectory())
    throw new OutputTargetError(flag, path, 'is a folder, not a file');
  checkCreatable(flag, path);
}

/**
 * A folder of checkpoints: missing, empty, or holding only our checkpoints (and hidden leftovers of
 * interrupted saves, and the run lock), of the run being resumed: a new run would rotate another run's
 * checkpoints away.
 */
async function checkCheckpointFolder(dir: string, resume: string | undefined): Promise<void> {
  const flag = '--checkpoint-dir';
  if (!existsSync(dir)) return checkCreatable(flag, dir);
  if (!statSync(dir).isDirectory()) throw new OutputTargetError(flag, dir, 'exists and is not a folder');
  if (existsSync(resolve(dir, MANIFEST_FILE)))
    throw new OutputTargetError(
      flag,
      dir,
      'is one checkpoint, not a folder of checkpoints; give a new folder (--resume reads this one)',
    );
  const foreign = (await readdir(dir))
    .filter((n) => !/^checkpoint-\d+$/.test(n) && !n.startsWith('.checkpoint-') && n !== LOCK_FILE)
    .sort();
  if (foreign.length)
    throw new OutputTargetError(
      flag,
      dir,
      `holds files that are not lsp-offload checkpoints (${foreign.slice(0, 5).join(', ')}` +
        `${foreign.length > 5 ? ', ...' : ''}); choose a new or empty folder`,
    );
  const saved = (await readdir(dir)).filter((n) => /^checkpoint-\d+$/.test(n)).sort();
  if (saved.length && (resume === undefined || dirname(resolve(resume)) !== resolve(dir)))
    throw new OutputTargetError(
      flag,
      dir,
      `holds checkpoints of another run (${saved.slice(0, 3).join(', ')}${saved.length > 3 ? ', ...' : ''}); ` +
        `continue that run with --resume ${dir}, or choose a new folder`,
    );
  checkWritable(flag, dir, dir);
}

/** The nearest existing ancestor of `path` is a writable folder (so `path` can be created). */
function checkCreatable(flag: string, path: string): void {
  let parent = dirname(resolve(path));
  while (!existsSync(parent)) parent = dirname(parent);
  if (!statSync(parent).isDirectory())
    throw new OutputTargetError(flag, path, `cannot be created: ${parent} is not a folder`);
  checkWritable(flag, path, parent);
}

function checkWritable(flag: string, path: string, folder: string): void {
  try {
    accessSync(folder, constants.W_OK | constants.X_OK);
  } catch {
    throw new OutputTargetError(flag, path, `cannot be written: no write permission in ${folder}`);
  }
}
