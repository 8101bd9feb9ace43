// Where an export may go. An export replaces its target folder whole, so it must never land on files we
// did not write: the target is a new or empty folder, or (with force) one of our own earlier exports,
// which carry a marker file; never the model directory the run reads, whatever it holds.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** Written into every export: marks a folder an export may replace (with force). */
export const EXPORT_MARKER_FILE = 'lsp-offload-export.json';

export interface ExportTargetOptions {
  /** Replace an earlier export of ours (default false: refused). */
  readonly force?: boolean;
  /** Folders the target must not be (the input model directory, the checkpoint folders), by their flag. */
  readonly protectedDirs?: Readonly<Record<string, string | undefined>>;
}

/** What is wrong with exporting to `dir`, or undefined when it may be written. */
export async function exportTargetProblem(
  dir: string,
  options: ExportTargetOptions = {},
): Promise<string | undefined> {
  const target = canonical(dir);
  for (const [flag, protectedDir] of Object.entries(options.protectedDirs ?? {}))
    if (protectedDir !== undefined && canonical(protectedDir) === target)
      return `is the ${flag === '--model' ? 'input model directory' : 'folder'} (${flag}); choose a new folder`;
  if (!existsSync(target)) return undefined;
  if (!statSync(target).isDirectory()) return 'exists and is not a folder';
  const names = (await readdir(target)).sort();
  if (names.length === 0) return undefined;
  if (!names.includes(EXPORT_MARKER_FILE)) {
    const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? ', ...' : '');
    return `is not empty and not an lsp-offload export (it holds ${shown}); choose a new or empty folder`;
  }
  return options.force ? undefined : 'holds an earlier lsp-offload export; give --force to replace it';
}

/** An existing earlier export of ours (what a forced export may replace). */
export function isOwnExport(dir: string): boolean {
  return existsSync(join(dir, EXPORT_MARKER_FILE));
}

/** The path with symlinks resolved as far as it exists, so two spellings of one folder compare equal. */
function canonical(path: string): string {
  const full = resolve(path);
  try {
    return realpathSync(full);
  } catch {
    return full;
  }
}
