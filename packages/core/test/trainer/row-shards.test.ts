import { describe, expect, it } from 'vitest';
import { rowShards } from '../../src/trainer/row-shards.js';
import type { ParameterSpec } from '../../src/index.js';

const spec = (rows: number, cols: number): ParameterSpec =>
  ({ name: 'w', shape: [rows, cols], role: 'embedding', layer: null }) as unknown as ParameterSpec;

describe('rowShards', () => {
  it('covers every row once, in blocks of at most about the asked size', () => {
    for (const [rows, cols, bytes] of [
      [32256, 2048, 32 << 20],
      [37, 16, 1024],
      [1001, 3, 400],
      [5, 7, 1],
    ] as const) {
      const s = rowShards(spec(rows, cols), bytes);
      expect(s[0]!.rowStart).toBe(0);
      expect(s[s.length - 1]!.rowEnd).toBe(rows);
      for (let k = 1; k < s.length; k++) expect(s[k]!.rowStart).toBe(s[k - 1]!.rowEnd);
      for (const b of s) expect(b.rowEnd).toBeGreaterThan(b.rowStart);
      // an even split: no block more than 2 rows (the alignment) above the mean
      const mean = rows / s.length;
      for (const b of s) expect(b.rowEnd - b.rowStart).toBeLessThanOrEqual(Math.ceil(mean) + 2);
      expect(new Set(s.map((b) => b.name)).size).toBe(s.length);
    }
    expect(rowShards(spec(32256, 2048), 32 << 20).length).toBe(8); // 264 MB of f32
  });

  it('keeps one block, named as the parameter, when it fits', () => {
    expect(rowShards(spec(37, 16), 1 << 20)).toEqual([{ name: 'w', rowStart: 0, rowEnd: 37 }]);
  });

  it('starts fp16 blocks on 4-byte boundaries: even rows when the row length is odd', () => {
    const s = rowShards(spec(1001, 3), 400);
    expect(s.length).toBeGreaterThan(5);
    for (const b of s) expect((b.rowStart * 3 * 2) % 4).toBe(0);
    // and every block but the last has a whole number of words
    for (const b of s.slice(0, -1)) expect(((b.rowEnd - b.rowStart) * 3 * 2) % 4).toBe(0);
  });
});
