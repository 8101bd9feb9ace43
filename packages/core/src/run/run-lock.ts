// One run per checkpoint folder. Two runs saving into one folder would remove each other's checkpoints
// mid-save; the lock file (created exclusively) names the run holding it: pid, host, its start and the
// process's start time, so a lock left by a killed run is recognised as stale (its process is gone, or
// the pid now belongs to another process) and taken over. A lock from another host cannot be checked:
// it is refused, with the file to delete.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

export const LOCK_FILE = 'lsp-offload.lock';

interface LockOwner {
  pid: number;
  host: string;
  since: string;
  /** /proc/<pid>/stat's start time in clock ticks (Linux), to tell a reused pid from the owner. */
  processStart?: string;
}

export class RunLockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunLockError';
  }
}

export class RunLock {
  private released = false;
  private readonly onExit = () => this.release();

  private constructor(
    readonly path: string,
    private readonly owner: LockOwner,
  ) {
    // a process.exit (a second Ctrl-C) skips finally blocks: release on the way out all the same
    process.on('exit', this.onExit);
  }

  /**
   * Takes the lock of `dir` (created if missing). `flag` names the folder in messages; `onStale` hears
   * about a stale lock taken over.
   */
  static async acquire(dir: string, flag: string, onStale?: (message: string) => void): Promise<RunLock> {
    const root = resolve(dir);
    await mkdir(root, { recursive: true });
    const path = join(root, LOCK_FILE);
    const owner: LockOwner = {
      pid: process.pid,
      host: hostname(),
      since: new Date().toISOString(),
      ...processStartOf(process.pid),
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(path, 'wx');
        try {
          writeSync(fd, `${JSON.stringify(owner)}\n`);
        } finally {
          closeSync(fd);
        }
        return new RunLock(path, owner);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      }
      const holder = readOwner(path);
      const stale = holder === undefined ? 'unreadable' : staleReason(holder);
      if (stale === undefined)
        throw new RunLockError(
          `${flag} ${root}: in use by another run (pid ${holder!.pid} on ${holder!.host}, since ${holder!.since}); ` +
            `wait for it to finish, or use another folder` +
            (holder!.host === owner.host ? '' : ` (if no run uses it, delete ${path})`),
        );
      rmSync(path, { force: true });
      onStale?.(
        holder === undefined
          ? `took over an unreadable lock in ${root}`
          : `took over a stale lock of pid ${holder.pid} (${stale}) in ${root}`,
      );
    }
  }

  /** Removes the lock file if it is still ours (idempotent, synchronous: safe in an exit handler). */
  release(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    const holder = readOwner(this.path);
    if (holder?.pid === this.owner.pid && holder.host === this.owner.host) rmSync(this.path, { force: true });
  }
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.since === 'string')
      return v as LockOwner;
  } catch {
    // missing or half-written: no owner to honour
  }
  return undefined;
}

/** Why a lock of this host is stale, or undefined while its owner runs (or cannot be checked). */
function staleReason(holder: LockOwner): string | undefined {
  if (holder.host !== hostname()) return undefined;
  if (!isRunning(holder.pid)) return 'no longer running';
  const now = processStartOf(holder.pid).processStart;
  if (holder.processStart !== undefined && now !== undefined && now !== holder.processStart)
    return 'its pid now belongs to another process';
  return undefined;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, owned by another user
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function processStartOf(pid: number): { processStart?: string } {
  try {
    // field 22 of /proc/<pid>/stat, counted after the parenthesised command name (which may hold spaces)
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = fields[19];
    return start === undefined ? {} : { processStart: start };
  } catch {
    return {};
  }
}
