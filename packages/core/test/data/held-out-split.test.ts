// The held-out split: disjoint from training, covering everything, the right size, fixed by the seed.
import { describe, expect, it } from 'vitest';
import { DEFAULT_HELD_OUT, DataFormatError, heldOutCount, splitHeldOut } from '../../src/data/index.js';

describe('splitHeldOut', () => {
  it('splits into disjoint sets that together are every index, each ascending', () => {
    const { train, heldOut } = splitHeldOut(100, { fraction: 0.2 }, 3);
    expect(heldOut).toHaveLength(20);
    expect(train).toHaveLength(80);
    const trainSet = new Set(train);
    expect(heldOut.some((i) => trainSet.has(i))).toBe(false);
    expect([...train, ...heldOut].sort((a, b) => a - b)).toEqual([...Array(100).keys()]);
    expect([...heldOut].sort((a, b) => a - b)).toEqual(heldOut);
  });

  it('depends on the seed only', () => {
    expect(splitHeldOut(50, { count: 5 }, 1)).toEqual(splitHeldOut(50, { count: 5 }, 1));
    expect(splitHeldOut(50, { count: 5 }, 1).heldOut).not.toEqual(splitHeldOut(50, { count: 5 }, 2).heldOut);
  });

  it('sizes by fraction (rounded, at least one, capped) or by count', () => {
    expect(heldOutCount(100, { fraction: 0.05 })).toBe(5);
    expect(heldOutCount(10, { fraction: 0.01 })).toBe(1);
    expect(heldOutCount(100, { fraction: 0 })).toBe(0);
    expect(heldOutCount(100_000, DEFAULT_HELD_OUT)).toBe(1000);
    expect(heldOutCount(10, { count: 3 })).toBe(3);
    // A fraction always leaves one example to train on.
    expect(heldOutCount(1, { fraction: 0.5 })).toBe(0);
    expect(heldOutCount(2, { fraction: 0.9 })).toBe(1);
    expect(splitHeldOut(4, { count: 0 }, 1)).toEqual({ train: [0, 1, 2, 3], heldOut: [] });
  });

  it('refuses splits that leave nothing to train on, and bad sizes', () => {
    expect(() => heldOutCount(3, { count: 4 })).toThrow(DataFormatError);
    expect(() => heldOutCount(3, { count: 3 })).toThrow(/leaves none to train on/);
    expect(() => heldOutCount(10, { fraction: 1 })).toThrow(/not in \[0, 1\)/);
    expect(() => heldOutCount(10, { count: -1 })).toThrow(/not a non-negative integer/);
  });
});
