import { describe, expect, it } from 'vitest';
import { MemorySet } from '../src/arena.js';

const RESERVED = 256 * 1024;

describe('MemorySet', () => {
  it("staggers large arrays so one tensor's streams do not share low address bits", () => {
    const set = new MemorySet({ capBytes: 64 << 20, reservedBytes: RESERVED });
    const { offsets } = set.alloc([4 << 20, 4 << 20, 4 << 20, 4 << 20]);
    for (const o of offsets) expect(o % 64).toBe(0);
    expect(new Set(offsets.map((o) => o % 65536)).size).toBe(4);
    expect(new Set(offsets.map((o) => o % 4096)).size).toBe(4);
    const small = set.alloc([100, 100]).offsets;
    expect(small[1]! - small[0]!).toBe(128); // small arrays: just cache-line aligned
  });

  it('fits a group of maxElements in one empty memory, and opens new memories as needed', () => {
    for (const cap of [512 * 1024, 64 << 20]) {
      const set = new MemorySet({ capBytes: cap, reservedBytes: RESERVED });
      const per = [4, 4, 4, 4];
      const n = set.maxElements(per, 32);
      expect(n % 32).toBe(0);
      set.alloc(per.map((b) => b * n));
      expect(set.arenas.length).toBe(1);
      expect(set.alloc(per.map((b) => b * n)).arena.id).toBe(1); // a second one does not fit beside it
      expect(set.arenas.length).toBe(2);
      expect(set.arenas[0]!.memory.buffer.byteLength).toBeLessThanOrEqual(cap);
    }
  });

  it('refuses a cap that is not whole pages, over 4 GiB, or too small', () => {
    expect(() => new MemorySet({ capBytes: 1000, reservedBytes: RESERVED })).toThrow(/multiple of 64 KiB/);
    expect(() => new MemorySet({ capBytes: 2 ** 32 + 65536, reservedBytes: RESERVED })).toThrow(
      /at most 4 GiB/,
    );
    expect(() => new MemorySet({ capBytes: RESERVED, reservedBytes: RESERVED })).toThrow(/leaves no room/);
  });
});
