import { describe, expect, it } from 'vitest';
import { Rng } from '../src/util/rng.js';

describe('Rng (PCG32)', () => {
  it('matches the PCG32 reference sequence for seed 42, stream 54', () => {
    // from the reference implementation's demo (pcg32_srandom_r(&rng, 42u, 54u))
    const rng = new Rng(42, 54);
    const want = [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e];
    expect(want.map(() => rng.nextU32())).toEqual(want);
  });

  it('restores exactly from a saved state', () => {
    const a = new Rng(7);
    for (let i = 0; i < 10; i++) a.next();
    const b = Rng.fromState(JSON.parse(JSON.stringify(a.getState())));
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(
      Array.from({ length: 5 }, () => a.nextU32()),
    );
  });

  it('below(n) is in range and roughly uniform; shuffle is a permutation', () => {
    const rng = new Rng(3);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 70000; i++) counts[rng.below(7)]++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(500);
    const a = rng.shuffle(Array.from({ length: 100 }, (_, i) => i));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});
