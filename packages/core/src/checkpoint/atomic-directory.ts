// Replacing a whole directory so that a crash at any point leaves either the previous directory or the
// complete new one, never a mixture. POSIX cannot swap two directories atomically, so the new one is
// built as a hidden sibling and the swap is two renames, with every step named on disk:
//   .<name>.partial-<id>  being filled (a crash here: removed, the old directory stands)
//   .<name>.ready-<id>    complete and synced (renamed from partial, itself an atomic step)
//   .<name>.old-<id>      the previous directory, moved aside just before ready takes its name
// After a crash between the two renames <name> is missing; recoverInterruptedReplace() (run before every
// replace and every checkpoint load) then promotes the ready sibling, and removes any leftovers. The old
// directory is deleted only once the new one has its name, so an old sibling seen while <name> is missing
// is always complete. One writer per directory at a time.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { syncDirectory } from '../hf/atomic-file.js';
import { CheckpointError } from './errors.js';

type SiblingPhase = 'partial' | 'ready' | 'old';

interface Sibling {
  readonly phase: SiblingPhase;
  readonly path: string;
}

export interface ReplaceOptions {
  /**
   * Whether an existing directory at the target may be replaced (deleted once the new one is in place):
   * guards against pointing a save at a directory that holds something else.
   */
  readonly mayReplace: (existing: string) => Promise<boolean>;
  /** Named in the refusal, e.g. 'an lsp-offload checkpoint'. */
  readonly whatMayBeReplaced: string;
}

/**
 * Builds a new directory with `fill` (given an empty directory to write into) and puts it at `dir`,
 * replacing what was there only once it is complete and synced. If `fill` throws, nothing changes at
 * `dir` and the partial directory is removed.
 */
export async function replaceDirectoryAtomically(
  target: string,
  fill: (tempDir: string) => Promise<void>,
  options: ReplaceOptions,
): Promise<void> {
  const dir = resolve(target);
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  await recoverInterruptedReplace(dir);
  const existing = await kindOf(dir);
  if (existing === 'other') throw new CheckpointError(dir, 'exists and is not a directory');
  if (existing === 'directory' && !(await isEmptyDirectory(dir)) && !(await options.mayReplace(dir)))
    throw new CheckpointError(
      dir,
      `refusing to replace it: it is not empty and not ${options.whatMayBeReplaced} (choose a new or empty directory)`,
    );

  const id = randomBytes(8).toString('hex');
  const partial = siblingPath(dir, 'partial', id);
  await mkdir(partial);
  try {
    await fill(partial);
    await syncDirectory(partial);
  } catch (e) {
    await rm(partial, { recursive: true, force: true });
    throw e;
  }
  const ready = siblingPath(dir, 'ready', id);
  await rename(partial, ready);
  await syncDirectory(parent);

  const old = existing === 'directory' ? siblingPath(dir, 'old', id) : undefined;
  if (old) await rename(dir, old);
  try {
    await rename(ready, dir);
  } catch (e) {
    if (old) await rename(old, dir);
    await rm(ready, { recursive: true, force: true });
    throw e;
  }
  await syncDirectory(parent);
  if (old) await rm(old, { recursive: true, force: true });
}

/**
 * Finishes or undoes a replace of `dir` that a crash interrupted: when `dir` is missing, the complete new
 * directory (or else the moved-aside old one) takes its name; every other leftover sibling is removed.
 */
export async function recoverInterruptedReplace(target: string): Promise<void> {
  const dir = resolve(target);
  const siblings = await leftoverSiblings(dir);
  if (siblings.length === 0) return;
  let promoted: Sibling | undefined;
  if ((await kindOf(dir)) === 'missing') {
    promoted = siblings.find((s) => s.phase === 'ready') ?? siblings.find((s) => s.phase === 'old');
    if (promoted) {
      await rename(promoted.path, dir);
      await syncDirectory(dirname(dir));
    }
  }
  for (const s of siblings) if (s !== promoted) await rm(s.path, { recursive: true, force: true });
}

/** The hidden siblings a replace of `dir` makes (for tests and for recovery). */
export async function leftoverSiblings(dir: string): Promise<Sibling[]> {
  const prefix = `.${basename(dir)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(dir));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: Sibling[] = [];
  for (const name of names.sort()) {
    if (!name.startsWith(prefix)) continue;
    const match = /^(partial|ready|old)-[0-9a-f]{16}$/.exec(name.slice(prefix.length));
    if (match) out.push({ phase: match[1] as SiblingPhase, path: join(dirname(dir), name) });
  }
  return out;
}

function siblingPath(dir: string, phase: SiblingPhase, id: string): string {
  return join(dirname(dir), `.${basename(dir)}.${phase}-${id}`);
}

async function kindOf(path: string): Promise<'missing' | 'directory' | 'other'> {
  try {
    return (await stat(path)).isDirectory() ? 'directory' : 'other';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw e;
  }
}

async function isEmptyDirectory(dir: string): Promise<boolean> {
  return (await readdir(dir)).length === 0;
}
