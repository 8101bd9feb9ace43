// A run's folder of checkpoints (--checkpoint-dir): one checkpoint-<step> directory per save, each
// written atomically (saveCheckpoint), the newest --keep-checkpoints kept, so a bad save never replaces
// the only good state. "Newest" is the latest save, not the highest step: a run resumed from an older
// checkpoint (after a divergence, say) saves the history that continues, and later resumes take it.
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { recoverInterruptedReplace } from './atomic-directory.js';
import { CheckpointError } from './errors.js';
import { MANIFEST_FILE, parseManifest, type CheckpointManifest } from './manifest.js';

const CHECKPOINT_NAME = /^checkpoint-(\d+)$/;
/** The hidden siblings replaceDirectoryAtomically leaves when a save is cut short. */
const INTERRUPTED_NAME = /^\.(checkpoint-\d+)\.(partial|ready|old)-[0-9a-f]{16}$/;

/** Default of --keep-checkpoints: the newest and the one before it. */
export const DEFAULT_KEEP_CHECKPOINTS = 2;

export interface SeriesCheckpoint {
  readonly dir: string;
  readonly step: number;
  /** ISO time of the save (the manifest's savedAt). */
  readonly savedAt: string;
}

/** Where the checkpoint of `step` goes in a folder of checkpoints. */
export function checkpointPath(root: string, step: number): string {
  return join(resolve(root), `checkpoint-${step}`);
}

/** Whether `dir` is one checkpoint (has its manifest), as opposed to a folder of them. */
export function isCheckpoint(dir: string): boolean {
  return existsSync(join(dir, MANIFEST_FILE));
}

/** Finishes or undoes saves into `root` that a crash cut short (see atomic-directory.ts). */
export async function recoverInterruptedSaves(root: string): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  const targets = new Set(names.map((n) => INTERRUPTED_NAME.exec(n)?.[1]).filter((n) => n !== undefined));
  for (const name of targets) await recoverInterruptedReplace(join(root, name));
}

/** The complete checkpoints of a folder, oldest save first (the latest save last). */
export async function listCheckpoints(root: string): Promise<SeriesCheckpoint[]> {
  const dir = resolve(root);
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: SeriesCheckpoint[] = [];
  for (const name of names) {
    const step = CHECKPOINT_NAME.exec(name)?.[1];
    if (step === undefined) continue;
    const savedAt = await savedAtOf(join(dir, name));
    if (savedAt !== undefined) out.push({ dir: join(dir, name), step: Number(step), savedAt });
  }
  return out.sort((a, b) => a.savedAt.localeCompare(b.savedAt) || a.step - b.step);
}

/**
 * The checkpoint a --resume (or generate --model) names: the directory itself when it is a checkpoint,
 * else the latest save in it; undefined when it is neither.
 */
export async function resolveCheckpoint(dir: string): Promise<string | undefined> {
  const root = resolve(dir);
  if (isCheckpoint(root)) return root;
  return (await listCheckpoints(root)).at(-1)?.dir;
}

/** Removes the oldest saves beyond the newest `keep`; returns the directories removed. */
export async function pruneCheckpoints(root: string, keep: number): Promise<string[]> {
  if (!Number.isInteger(keep) || keep < 1)
    throw new RangeError(`checkpoints to keep must be an integer >= 1, got ${keep}`);
  const all = await listCheckpoints(root);
  const removed = all.slice(0, Math.max(0, all.length - keep)).map((c) => c.dir);
  for (const dir of removed) await rm(dir, { recursive: true, force: true });
  return removed;
}

/** A checkpoint's save time, from its manifest (the directory's time for an unreadable one). */
async function savedAtOf(dir: string): Promise<string | undefined> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as { savedAt?: unknown };
    if (typeof manifest.savedAt === 'string') return manifest.savedAt;
  } catch {
    // not a complete checkpoint (no manifest): not one of the series
    if (!existsSync(join(dir, MANIFEST_FILE))) return undefined;
  }
  return (await stat(dir)).mtime.toISOString();
}

/** A checkpoint a run would resume from, with its manifest read and checked (its files are not). */
export interface ResumePoint {
  readonly dir: string;
  readonly manifest: CheckpointManifest;
}

/**
 * The manifest of the checkpoint `dir` names (itself, or the latest save in a folder of them), for a
 * caller that must know the saved settings before building anything (which flags may change).
 */
export async function readResumePoint(dir: string): Promise<ResumePoint> {
  const root = resolve(dir);
  if (existsSync(root) && !isCheckpoint(root)) await recoverInterruptedSaves(root);
  const found = await resolveCheckpoint(root);
  if (found === undefined)
    throw new CheckpointError(
      root,
      existsSync(root)
        ? 'holds no lsp-offload checkpoint (no checkpoint.json, no checkpoint-<step> folders)'
        : 'not found',
    );
  await recoverInterruptedReplace(found);
  const path = join(found, MANIFEST_FILE);
  return { dir: found, manifest: parseManifest(path, await readFile(path, 'utf8')) };
}
