// The lock of a checkpoint folder: one holder at a time; a lock of this host whose process is gone (or
// whose pid now belongs to another process) is stale and taken over; one of another host is refused
// with the file to delete; an unreadable one is taken over.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE, RunLock, RunLockError } from '../../src/index.js';

const dirs: string[] = [];
const folder = () => {
  const d = mkdtempSync(join(tmpdir(), 'run-lock-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const holder = (fields: Record<string, unknown>) =>
  JSON.stringify({ since: '2026-01-01T00:00:00Z', ...fields });

describe('RunLock', () => {
  it('is held by one run at a time and released', async () => {
    const dir = folder();
    const lock = await RunLock.acquire(dir, '--checkpoint-dir');
    const owner = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    expect(owner).toMatchObject({ pid: process.pid, host: hostname() });
    // this process is running: a second acquire is refused, naming it
    await expect(RunLock.acquire(dir, '--checkpoint-dir')).rejects.toThrow(
      new RegExp(`in use by another run \\(pid ${process.pid} on ${hostname()}, since `),
    );
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    (await RunLock.acquire(dir, '--checkpoint-dir')).release();
  });

  it('takes over a lock whose process is gone, or whose pid another process now has', async () => {
    const dir = folder();
    // a process that has exited: its pid is free
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(dir, LOCK_FILE), holder({ pid: gone, host: hostname() }));
    const heard: string[] = [];
    const lock = await RunLock.acquire(dir, '--checkpoint-dir', (m) => heard.push(m));
    expect(heard).toEqual([`took over a stale lock of pid ${gone} (no longer running) in ${dir}`]);
    lock.release();
    // our own pid, but another process start: the pid was reused
    writeFileSync(join(dir, LOCK_FILE), holder({ pid: process.pid, host: hostname(), processStart: '1' }));
    (await RunLock.acquire(dir, '--checkpoint-dir', (m) => heard.push(m))).release();
    expect(heard[1]).toMatch(/its pid now belongs to another process/);
    writeFileSync(join(dir, LOCK_FILE), '{"pid": 1');
    (await RunLock.acquire(dir, '--checkpoint-dir', (m) => heard.push(m))).release();
    expect(heard[2]).toBe(`took over an unreadable lock in ${dir}`);
  });

  it("refuses another host's lock, saying which file to delete", async () => {
    const dir = folder();
    writeFileSync(join(dir, LOCK_FILE), holder({ pid: 4242, host: 'elsewhere' }));
    const error = await RunLock.acquire(dir, '--checkpoint-dir').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunLockError);
    expect((error as Error).message).toBe(
      `--checkpoint-dir ${dir}: in use by another run (pid 4242 on elsewhere, since 2026-01-01T00:00:00Z); ` +
        `wait for it to finish, or use another folder (if no run uses it, delete ${join(dir, LOCK_FILE)})`,
    );
  });
});
