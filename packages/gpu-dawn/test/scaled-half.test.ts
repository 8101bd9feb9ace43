// fp16 with a per-tensor power-of-two scale (packScaledHalf) against its reference: the same fp16 bits
// and scale on odd sizes and magnitudes far from fp16's range, poisoned outputs, the scale landing in its
// slot of a shared header, and the values recovered on the host within fp16's rounding of the originals.
import { describe, expect, it } from 'vitest';
import { f16BitsToF32, packScaledHalf, type GpuRuntime, type Tensor } from '../src/index.js';
import { packScaledHalfReference, scaledHalfScale, unpackScaledHalf } from '../src/reference.js';
import { makeRng, NAN_BITS, randn, useGpu } from './harness.js';

const gpu = useGpu();

async function halfBits(g: GpuRuntime, t: Tensor): Promise<Uint16Array> {
  return new Uint16Array(await g.readBytes(t.buffer, t.byteOffset, t.bindingSize, t.label), 0, t.numel);
}

async function pack(values: Float32Array, headerSlots = 5, slot = 3) {
  const g = gpu();
  const src = g.upload('src', 'f32', [values.length], values);
  const dst = g.tensor('dst', 'f16', [values.length], 'workspace');
  g.fill32(dst, NAN_BITS);
  const header = g.tensor('header', 'u32', [headerSlots], 'workspace');
  g.fill32(header, 0xdeadbeef);
  packScaledHalf(g, src, dst, { scaleOut: header, scaleIndex: slot });
  const bits = await halfBits(g, dst);
  const words = (await g.read(header)) as Uint32Array;
  src.release();
  dst.release();
  header.release();
  return { bits, scale: new Float32Array(words.buffer, words.byteOffset, words.length)[slot]!, words };
}

describe('packScaledHalf', () => {
  // magnitudes from far below fp16's smallest normal to far above its largest value
  for (const [n, std] of [
    [1, 3],
    [7, 1e-9],
    [1001, 2e-4],
    [4097, 1],
    [33333, 7e5],
  ] as const)
    it(`${n} values of std ${std}: the reference's bits and scale, the header's other slots untouched`, async () => {
      const x = randn(makeRng(n), n, std);
      const want = packScaledHalfReference(x);
      const got = await pack(x);
      expect(got.scale).toBe(want.scale);
      expect(Number.isInteger(Math.log2(got.scale))).toBe(true);
      const bad = [...got.bits].findIndex((b, i) => b !== want.bits[i]);
      expect(bad, `element ${bad}: ${x[bad]} -> ${got.bits[bad]} vs ${want.bits[bad]}`).toBe(-1);
      for (const [i, w] of got.words.entries()) if (i !== 3) expect(w).toBe(0xdeadbeef);
      // the largest value lands in [2^14, 2^15), and the host recovers every value to fp16 precision
      const top = Math.max(...got.bits.map((b) => Math.abs(f16BitsToF32(b))));
      expect(top).toBeGreaterThanOrEqual(2 ** 14);
      expect(top).toBeLessThan(2 ** 15);
      const back = unpackScaledHalf(got.bits, got.scale);
      const absMax = Math.max(...x.map(Math.abs));
      for (let i = 0; i < n; i++)
        expect(Math.abs(back[i]! - x[i]!)).toBeLessThanOrEqual(
          Math.abs(x[i]!) * 2 ** -11 + absMax * 2 ** -39,
        );
    });

  it('an all-zero tensor gets scale 1; a non-finite one scale 1 with its NaN and inf kept', async () => {
    const zeros = await pack(new Float32Array(9), 1, 0);
    expect(zeros.scale).toBe(1);
    expect([...zeros.bits]).toEqual(new Array(9).fill(0));
    const x = Float32Array.from([1.5, NaN, -2, Infinity, 3e-3]);
    const got = await pack(x, 2, 1);
    expect(got.scale).toBe(scaledHalfScale(NaN));
    expect(Number.isNaN(f16BitsToF32(got.bits[1]!))).toBe(true);
    expect(f16BitsToF32(got.bits[3]!)).toBe(Infinity);
    expect(f16BitsToF32(got.bits[2]!)).toBe(-2);
  });

  it('refuses mismatched or shared tensors', () => {
    const g = gpu();
    const src = g.tensor('s', 'f32', [6], 'workspace');
    const short = g.tensor('d', 'f16', [5], 'workspace');
    const header = g.tensor('h', 'u32', [2], 'workspace');
    expect(() => packScaledHalf(g, src, short, { scaleOut: header })).toThrow(/6 elements/);
    const dst = g.tensor('d', 'f16', [6], 'workspace');
    expect(() => packScaledHalf(g, src, dst, { scaleOut: header, scaleIndex: 2 })).toThrow(/outside/);
    expect(() => packScaledHalf(g, src, dst, { scaleOut: src })).toThrow(/share storage/);
    for (const t of [src, short, header, dst]) t.release();
  });
});
