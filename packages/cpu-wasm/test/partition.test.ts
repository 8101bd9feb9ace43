import { describe, expect, it } from 'vitest';
import { partition, splitBlocks } from '../src/partition.js';

describe('partition', () => {
  const lengths = [1, 0, 7, 1001, 4099, 33, 65];

  for (const parts of [1, 2, 3, 5, 16]) {
    it(`covers every element exactly once, on 32-element boundaries (${parts} parts)`, () => {
      const shares = partition(lengths, parts, 32);
      expect(shares.length).toBe(parts);
      const seen = lengths.map((n) => new Uint8Array(n));
      for (const share of shares)
        for (const p of share) {
          expect(p.start % 32).toBe(0);
          for (let i = p.start; i < p.start + p.length; i++) seen[p.item]![i]!++;
        }
      expect(seen.every((s) => s.every((c) => c === 1))).toBe(true);
      const sizes = shares.map((s) => s.reduce((a, p) => a + p.length, 0));
      const total = lengths.reduce((a, b) => a + b, 0);
      for (const s of sizes) expect(Math.abs(s - total / parts)).toBeLessThanOrEqual(32);
    });
  }

  it('splits pieces into blocks aligned to the item start', () => {
    expect(splitBlocks([{ item: 0, start: 32, length: 100 }], 64)).toEqual([
      { item: 0, start: 32, length: 32 },
      { item: 0, start: 64, length: 64 },
      { item: 0, start: 128, length: 4 },
    ]);
  });
});
