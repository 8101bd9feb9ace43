// A tensor's values as fp16 with a per-tensor power-of-two scale, for sending gradients to the host in
// half the bytes: s is chosen on the GPU from max |x| so the largest value lands in [2^14, 2^15) (no
// overflow, and 28 octaves below it before fp16 subnormals), and dst = fp16(x * s) rounds to nearest even.
// s is exact to divide by on the host. Its f32 bits go to an element of a small tensor the caller sends
// along (e.g. a header downloaded with the values). Next to its float64 reference.
import { f16BitsToF32, f32ToF16Bits } from '../dtype.js';
import { elementBlocks, sliceElements } from '../binding-blocks.js';
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import { grid1d } from './grid.js';
import { reduce } from './reduce.js';
import {
  packScaledHalfWgsl,
  SCALED_HALF_TOP_EXPONENT,
  SCALED_HALF_WORKGROUP_SIZE,
} from './scaled-half.wgsl.js';

export interface PackScaledHalfOptions {
  /** u32 or f32 tensor receiving the scale's f32 bits at `scaleIndex`. */
  scaleOut: Tensor;
  scaleIndex?: number;
}

/**
 * Record dst (f16, as many elements as src) = fp16(src * s) and scaleOut[scaleIndex] = s, with s = 2^e
 * chosen from max |src| (1 when that is 0 or not finite). src is f32; f32 subnormal inputs may be read as
 * zero (their fp16 value is zero at any scale a normal maximum allows).
 */
export function packScaledHalf(
  gpu: GpuRuntime,
  src: Tensor,
  dst: Tensor,
  options: PackScaledHalfOptions,
): void {
  const { scaleOut } = options;
  const scaleIndex = options.scaleIndex ?? 0;
  if (src.dtype !== 'f32') throw new Error(`packScaledHalf: source '${src}' must be f32`);
  if (dst.dtype !== 'f16' || dst.numel !== src.numel)
    throw new Error(`packScaledHalf: destination '${dst}' must be f16 with ${src.numel} elements`);
  if (scaleOut.dtype !== 'u32' && scaleOut.dtype !== 'f32')
    throw new Error(`packScaledHalf: scale tensor '${scaleOut}' must be u32 or f32`);
  if (!Number.isInteger(scaleIndex) || scaleIndex < 0 || scaleIndex >= scaleOut.numel)
    throw new Error(`packScaledHalf: scale index ${scaleIndex} outside '${scaleOut}'`);
  if (dst.buffer === src.buffer || scaleOut.buffer === src.buffer || scaleOut.buffer === dst.buffer)
    throw new Error(`packScaledHalf: '${src}', '${dst}' and '${scaleOut}' must not share storage`);
  const absMax = gpu.scratch('packScaledHalf.absMax', 'f32', [1]);
  if (src.numel > 0) reduce(gpu, 'absMax', src, { out: absMax });
  else gpu.fill32(absMax, 0); // scale 1; the kernel still writes it
  // a tensor larger than one binding (a vocabulary-sized LM-head gradient) is packed in element blocks,
  // all with the one scale of the whole tensor (blocks start at even elements: dst packs pairs)
  const blocks = src.numel > 0 ? elementBlocks(gpu, [src, dst], src.numel, 2) : [{ start: 0, count: 0 }];
  for (const { start, count } of blocks) {
    const srcBlock = sliceElements(src, start, count);
    const dstBlock = sliceElements(dst, start, count);
    const grid = grid1d(gpu, Math.max(1, Math.ceil(count / 2)), SCALED_HALF_WORKGROUP_SIZE);
    gpu.dispatch({
      label: blocks.length > 1 ? `packScaledHalf(${src.label}[${start}:])` : `packScaledHalf(${src.label})`,
      pipeline: gpu.pipeline('packScaledHalf', () => packScaledHalfWgsl),
      bindings: [srcBlock, absMax, dstBlock, scaleOut],
      params: new Params().u32(count).u32(grid.rowStride).u32(0).u32(scaleIndex),
      workgroups: grid.workgroups,
    });
  }
}

/** The scale packScaledHalf picks for a tensor whose largest magnitude is `absMax`. */
export function scaledHalfScale(absMax: number): number {
  if (!(absMax > 0) || !Number.isFinite(absMax)) return 1;
  const bits = new Uint32Array(new Float32Array([absMax]).buffer)[0]!;
  const exp = (bits >>> 23) & 0xff;
  const e = Math.min(127, Math.max(-126, SCALED_HALF_TOP_EXPONENT - (exp - 127)));
  return 2 ** e;
}

/** Reference of packScaledHalf: the fp16 bits and the scale (f32 inputs; subnormal inputs as zero). */
export function packScaledHalfReference(src: ArrayLike<number>): { bits: Uint16Array; scale: number } {
  let absMax = 0;
  for (let i = 0; i < src.length; i++) absMax = Math.max(absMax, Math.abs(Math.fround(src[i]!)));
  const scale = scaledHalfScale(Math.fround(absMax));
  const bits = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = Math.fround(src[i]!);
    bits[i] = f32ToF16Bits(Math.abs(x) < 2 ** -126 ? 0 : Math.fround(x * scale));
  }
  return { bits, scale };
}

/** The values a host recovers from packScaledHalf's output: fp16(x * s) / s. */
export function unpackScaledHalf(bits: Uint16Array, scale: number): Float64Array {
  return Float64Array.from(bits, (b) => f16BitsToF32(b) / scale);
}
