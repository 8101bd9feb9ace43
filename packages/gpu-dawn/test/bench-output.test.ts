// What the benches print: figures with enough digits to be non-zero on a slow adapter, and shape labels
// that name the shapes actually run (scaled down ones included).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
// @ts-expect-error: a plain .mjs module of the benches, without typings
import { sig } from '../bench/format.mjs';

const bench = fileURLToPath(new URL('../bench/', import.meta.url));

describe('bench output', () => {
  it('figures keep three significant digits', () => {
    expect([sig(0.000123456), sig(0.0457), sig(3.14159), sig(1234.5), sig(undefined), sig(0)]).toEqual([
      '0.000123',
      '0.0457',
      '3.14',
      '1235',
      '-',
      '0',
    ]);
    expect(sig(2.5, 7)).toBe('   2.50');
  });

  it('matmul scaled down: the label names the features run, and TFLOP/s are not printed as 0.0', () => {
    const out = mkdtempSync(join(tmpdir(), 'matmul-bench-'));
    const r = spawnSync(process.execPath, [join(bench, 'matmul.mjs'), out, '--scale', '64', '--quick'], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const row = r.stdout.split('\n').find((l) => /^fwd \d+->\d+\s+\d+\s+\d+\s+\d+ \|/.test(l));
    expect(row, r.stdout).toBeDefined();
    const [, kIn, nOut, m, n, k] = row!.match(/^fwd (\d+)->(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/)!.map(Number);
    expect([kIn, nOut, m, n, k]).toEqual([64, 64, 32, 64, 64]);
    const ours = row!.split('|')[1]!.trim().split(/\s+/)[0]!;
    expect(Number(ours)).toBeGreaterThan(0);
  });
});
