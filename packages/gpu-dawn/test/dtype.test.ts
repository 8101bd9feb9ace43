import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f16Round, f32ToF16Bits } from '../src/index.js';
import { makeRng } from './rng.js';

describe('f16 conversion', () => {
  it('every finite f16 bit pattern round-trips exactly', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) {
        expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(v)))).toBe(true);
        continue;
      }
      if (f32ToF16Bits(v) !== h)
        expect.fail(`0x${h.toString(16)} -> ${v} -> 0x${f32ToF16Bits(v).toString(16)}`);
    }
  });

  it('rounds random f32 values to the nearest f16 (ties to even), checked by brute-force neighbours', () => {
    const rng = makeRng(5);
    // sorted list of all finite non-negative f16 values
    const pos: number[] = [];
    for (let h = 0; h < 0x7c00; h++) pos.push(f16BitsToF32(h));
    for (let k = 0; k < 20000; k++) {
      const mag = Math.fround(2 ** (rng() * 44 - 28) * (1 + rng()));
      const x = rng() < 0.5 ? -mag : mag;
      const got = f16Round(x);
      const a = Math.abs(x);
      // binary search neighbours
      let lo = 0;
      let hi = pos.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (pos[mid]! <= a) lo = mid;
        else hi = mid;
      }
      let want: number;
      if (a >= 65520) want = Infinity;
      else if (a - pos[lo]! < pos[hi]! - a) want = pos[lo]!;
      else if (a - pos[lo]! > pos[hi]! - a) want = pos[hi]!;
      else want = lo % 2 === 0 ? pos[lo]! : pos[hi]!;
      if (Math.abs(got) !== want) expect.fail(`f16Round(${x}) = ${got}, want ${Math.sign(x) * want}`);
    }
  });

  it('handles overflow, underflow and NaN', () => {
    expect(f16Round(1e6)).toBe(Infinity);
    expect(f16Round(-1e6)).toBe(-Infinity);
    expect(f16Round(1e-9)).toBe(0);
    expect(f16Round(2 ** -24)).toBe(2 ** -24);
    expect(f16Round(65504)).toBe(65504);
    expect(Number.isNaN(f16Round(NaN))).toBe(true);
  });
});
