// Reading tensors by name, one at a time, converted on request. Both a single safetensors file and a
// sharded checkpoint directory are TensorReaders; only the byte source differs.
import { HfFormatError } from './errors.js';
import {
  bf16BitsToFloat32,
  f16BitsToFloat32,
  float32ToBf16Bits,
  float32ToF16Bits,
  float64ToF16Bits,
} from './float-convert.js';
import { viewAsDtype, type SafetensorsDtype, type TensorArray } from './safetensors-dtypes.js';
import type { SafetensorsTensorInfo } from './safetensors-header.js';

/** A tensor with its data in the dtype's own typed array (F16/BF16 as raw bits). */
export interface Tensor<A extends TensorArray = TensorArray> {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data: A;
}

export interface TensorSourceInfo extends SafetensorsTensorInfo {
  /** The file holding the tensor. */
  readonly file: string;
}

export abstract class TensorReader {
  /** Every tensor, by name, in file order. */
  abstract readonly tensors: ReadonlyMap<string, TensorSourceInfo>;
  /** Reads the tensor's bytes into `dest` (exactly `byteLength` bytes), e.g. a mapped GPU staging buffer. */
  abstract readInto(name: string, dest: Uint8Array): Promise<void>;
  abstract close(): Promise<void>;

  info(name: string): TensorSourceInfo {
    const info = this.tensors.get(name);
    if (!info) throw new HfFormatError(this.describe(), 'no such tensor', name);
    return info;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** What to call this reader in errors (a file or a directory). */
  protected abstract describe(): string;

  /** The tensor's bytes, in a fresh buffer of exactly its size (so typed views are aligned). */
  async readBytes(name: string): Promise<Uint8Array> {
    const bytes = new Uint8Array(this.info(name).byteLength);
    await this.readInto(name, bytes);
    return bytes;
  }

  /** The tensor as stored: F16 and BF16 come back as raw bits in a Uint16Array. */
  async read(name: string): Promise<Tensor> {
    const { dtype, shape } = this.info(name);
    return { dtype, shape, data: viewAsDtype(dtype, await this.readBytes(name)) };
  }

  /** Any float dtype, widened or rounded to f32. */
  async readFloat32(name: string): Promise<Tensor<Float32Array>> {
    const { dtype, shape, data } = await this.read(name);
    return { dtype, shape, data: toFloat32(this.tensorFile(name), name, dtype, data) };
  }

  /** Any float dtype as f64 (exact for all of them): for comparing against references. */
  async readFloat64(name: string): Promise<Tensor<Float64Array>> {
    const { dtype, shape, data } = await this.read(name);
    const out =
      dtype === 'F64'
        ? (data as Float64Array)
        : Float64Array.from(toFloat32(this.tensorFile(name), name, dtype, data));
    return { dtype, shape, data: out };
  }

  /** Any float dtype as f16 bits: F16 as stored (no conversion), others rounded to nearest even. */
  async readFloat16(name: string): Promise<Tensor<Uint16Array>> {
    const { dtype, shape, data } = await this.read(name);
    let out: Uint16Array;
    if (dtype === 'F16') out = data as Uint16Array;
    else if (dtype === 'F64') out = float64ToF16Bits(data as Float64Array);
    else out = float32ToF16Bits(toFloat32(this.tensorFile(name), name, dtype, data));
    return { dtype, shape, data: out };
  }

  /** Any float dtype as bf16 bits: BF16 as stored, others rounded to nearest even. */
  async readBfloat16(name: string): Promise<Tensor<Uint16Array>> {
    const { dtype, shape, data } = await this.read(name);
    const out =
      dtype === 'BF16'
        ? (data as Uint16Array)
        : float32ToBf16Bits(toFloat32(this.tensorFile(name), name, dtype, data));
    return { dtype, shape, data: out };
  }

  /** Any integer dtype as int32, e.g. input_ids stored as I64; values out of int32 range are an error. */
  async readInt32(name: string): Promise<Tensor<Int32Array>> {
    const { dtype, shape, data } = await this.read(name);
    if (dtype === 'I32') return { dtype, shape, data: data as Int32Array };
    if (dtype === 'F16' || dtype === 'BF16' || dtype === 'F32' || dtype === 'F64')
      throw new HfFormatError(this.tensorFile(name), `expected an integer tensor, found ${dtype}`, name);
    const out = new Int32Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = Number(data[i]!);
      if (v < -(2 ** 31) || v >= 2 ** 31)
        throw new HfFormatError(
          this.tensorFile(name),
          `value ${data[i]} at index ${i} does not fit in int32`,
          name,
        );
      out[i] = v;
    }
    return { dtype, shape, data: out };
  }

  private tensorFile(name: string): string {
    return this.info(name).file;
  }
}

function toFloat32(file: string, name: string, dtype: SafetensorsDtype, data: TensorArray): Float32Array {
  switch (dtype) {
    case 'F32':
      return data as Float32Array;
    case 'F16':
      return f16BitsToFloat32(data as Uint16Array);
    case 'BF16':
      return bf16BitsToFloat32(data as Uint16Array);
    case 'F64':
      return Float32Array.from(data as Float64Array);
    default:
      throw new HfFormatError(file, `expected a float tensor (F16, BF16, F32 or F64), found ${dtype}`, name);
  }
}
