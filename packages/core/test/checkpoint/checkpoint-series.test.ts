// A folder of checkpoints: ordered by save time (a run resumed from an older checkpoint continues the
// history later resumes take), pruned to the newest N, incomplete saves ignored or recovered.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MANIFEST_FILE,
  checkpointPath,
  listCheckpoints,
  pruneCheckpoints,
  recoverInterruptedSaves,
  resolveCheckpoint,
} from '../../src/index.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A folder with checkpoints saved at the given times (only their manifests' savedAt matters here). */
function series(saves: [step: number, savedAt: string][]): string {
  const root = mkdtempSync(join(tmpdir(), 'series-'));
  dirs.push(root);
  for (const [step, savedAt] of saves) {
    mkdirSync(checkpointPath(root, step));
    writeFileSync(join(checkpointPath(root, step), MANIFEST_FILE), JSON.stringify({ savedAt }));
  }
  return root;
}

describe('checkpoint series', () => {
  it('lists complete checkpoints by save time; resolves a folder to its latest save', async () => {
    // step 30 came from a diverged history; the run resumed from 10 and saved 20 afterwards
    const root = series([
      [10, '2026-01-01T10:00:00.000Z'],
      [30, '2026-01-01T11:00:00.000Z'],
      [20, '2026-01-01T12:00:00.000Z'],
    ]);
    mkdirSync(join(root, 'checkpoint-40')); // no manifest: incomplete, not a checkpoint
    writeFileSync(join(root, 'notes.txt'), '');
    expect((await listCheckpoints(root)).map((c) => c.step)).toEqual([10, 30, 20]);
    expect(await resolveCheckpoint(root)).toBe(checkpointPath(root, 20));
    expect(await resolveCheckpoint(checkpointPath(root, 10))).toBe(checkpointPath(root, 10));
    expect(await resolveCheckpoint(join(root, 'notes'))).toBeUndefined();
  });

  it('prunes all but the newest saves', async () => {
    const root = series([
      [1, '2026-01-01T10:00:00.000Z'],
      [2, '2026-01-01T10:00:01.000Z'],
      [3, '2026-01-01T10:00:02.000Z'],
    ]);
    expect(await pruneCheckpoints(root, 2)).toEqual([checkpointPath(root, 1)]);
    expect(readdirSync(root).sort()).toEqual(['checkpoint-2', 'checkpoint-3']);
    await expect(pruneCheckpoints(root, 0)).rejects.toThrow(/integer >= 1/);
  });

  it('finishes a save a crash cut between its renames, and drops partial ones', async () => {
    const root = series([[1, '2026-01-01T10:00:00.000Z']]);
    const ready = join(root, '.checkpoint-2.ready-0123456789abcdef');
    mkdirSync(ready);
    writeFileSync(join(ready, MANIFEST_FILE), JSON.stringify({ savedAt: '2026-01-01T10:00:01.000Z' }));
    mkdirSync(join(root, '.checkpoint-3.partial-0123456789abcdef'));
    await recoverInterruptedSaves(root);
    expect(readdirSync(root).sort()).toEqual(['checkpoint-1', 'checkpoint-2']);
    expect(await resolveCheckpoint(root)).toBe(checkpointPath(root, 2));
  });
});
