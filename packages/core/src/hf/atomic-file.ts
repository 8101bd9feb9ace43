// Writing files so that readers see either the old file or the complete new one, never a partial
// one: write a temporary file in the same directory, fsync it, rename it over the target (atomic on
// POSIX within one file system), then fsync the directory so the rename itself survives a crash.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A complete, synced temporary file waiting to be renamed to its target. */
export interface StagedFile {
  readonly path: string;
  readonly tempPath: string;
  /** Renames the temporary file onto `path` (then syncs the directory). */
  commit(): Promise<void>;
  /** Removes the temporary file. */
  discard(): Promise<void>;
}

/** A write that failed (disk full, file size limit, I/O error), naming the file it was for. */
export class FileWriteError extends Error {
  readonly code: string | undefined;
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`cannot write ${path}: ${(cause as Error).message}`, { cause });
    this.name = 'FileWriteError';
    this.code = (cause as NodeJS.ErrnoException).code;
  }
}

/**
 * Writes a temporary file beside `path` with `write`; on any error nothing is left behind, and system
 * errors become FileWriteErrors naming `path` (Node's ENOSPC and EFBIG name no file).
 */
export async function stageFile(
  path: string,
  write: (file: FileHandle) => Promise<void>,
): Promise<StagedFile> {
  const dir = dirname(path);
  const tempPath = join(dir, `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(tempPath, 'wx');
  try {
    await write(handle);
    await handle.sync();
  } catch (e) {
    await handle.close().catch(() => undefined);
    await rm(tempPath, { force: true });
    // system errors (ENOSPC, EFBIG, EIO) name no file; others (e.g. a GPU read) pass as they are
    const code = (e as NodeJS.ErrnoException).code;
    throw typeof code === 'string' && /^E[A-Z]+$/.test(code) ? new FileWriteError(path, e) : e;
  }
  await handle.close();
  return {
    path,
    tempPath,
    commit: async () => {
      try {
        await rename(tempPath, path);
      } catch (e) {
        await rm(tempPath, { force: true });
        throw e;
      }
      await syncDirectory(dir);
    },
    discard: () => rm(tempPath, { force: true }),
  };
}

export async function writeFileAtomically(
  path: string,
  write: (file: FileHandle) => Promise<void>,
): Promise<void> {
  await (await stageFile(path, write)).commit();
}

export async function writeTextFileAtomically(path: string, text: string): Promise<void> {
  await writeFileAtomically(path, (file) => writeAll(file, new TextEncoder().encode(text), 0));
}

/** Writes all of `bytes` at `position`, in pieces small enough for one write call. */
export async function writeAll(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  const maxWrite = 1 << 30;
  let done = 0;
  while (done < bytes.byteLength) {
    const length = Math.min(bytes.byteLength - done, maxWrite);
    const { bytesWritten } = await file.write(bytes, done, length, position + done);
    done += bytesWritten;
  }
}

/** fsync a directory so the renames and file creations in it survive a power loss. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (e) {
    // Some platforms cannot open or fsync a directory; renames are still atomic there.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    await handle?.close();
  }
}
