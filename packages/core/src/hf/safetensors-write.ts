// Writing one safetensors file, atomically. Tensor data may be given up front or produced on demand
// (e.g. read back from the GPU one tensor at a time), so a large checkpoint is never assembled in
// memory: the header is computed from shapes alone and each tensor is written as it comes.
import { writeAll, stageFile, type StagedFile } from './atomic-file.js';
import { HfFormatError } from './errors.js';
import {
  dtypeByteSize,
  elementCount,
  isSafetensorsDtype,
  type SafetensorsDtype,
} from './safetensors-dtypes.js';

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** The bytes (any typed array with the dtype's little-endian layout), or a function producing them. */
  readonly data: ArrayBufferView | (() => Promise<ArrayBufferView>);
}

export interface SafetensorsWriteOptions {
  /**
   * String metadata for `__metadata__`. transformers refuses files whose `format` is not one of
   * pt/tf/flax/mlx, so `format: 'pt'` is added unless given.
   */
  readonly metadata?: Readonly<Record<string, string>>;
}

export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: SafetensorsWriteOptions = {},
): Promise<void> {
  await (await stageSafetensors(path, tensors, options)).commit();
}

/** Writes and syncs the file under a temporary name; `commit()` puts it in place. */
export async function stageSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: SafetensorsWriteOptions = {},
): Promise<StagedFile> {
  const { header, byteLengths } = buildHeader(path, tensors, options.metadata ?? {});
  return stageFile(path, async (file) => {
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    await writeAll(file, prefix, 0);
    await writeAll(file, header, 8);
    let position = 8 + header.byteLength;
    for (const [i, tensor] of tensors.entries()) {
      const view = typeof tensor.data === 'function' ? await tensor.data() : tensor.data;
      const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      if (bytes.byteLength !== byteLengths[i])
        throw new HfFormatError(
          path,
          `data has ${bytes.byteLength} bytes but shape [${tensor.shape.join(', ')}] of ${tensor.dtype} needs ${byteLengths[i]}`,
          tensor.name,
        );
      await writeAll(file, bytes, position);
      position += bytes.byteLength;
    }
  });
}

/** The JSON header, padded with spaces to a multiple of 8 bytes so the data section stays aligned. */
function buildHeader(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata: Readonly<Record<string, string>>,
): { header: Uint8Array; byteLengths: number[] } {
  const entries: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  const byteLengths: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(entries, t.name))
      throw new HfFormatError(path, 'duplicate or reserved tensor name', t.name);
    if (!isSafetensorsDtype(t.dtype))
      throw new HfFormatError(path, `unknown dtype "${String(t.dtype)}"`, t.name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new HfFormatError(
        path,
        `shape [${t.shape.join(', ')}] is not a list of non-negative integers`,
        t.name,
      );
    const byteLength = elementCount(t.shape) * dtypeByteSize(t.dtype);
    if (typeof t.data !== 'function' && t.data.byteLength !== byteLength)
      throw new HfFormatError(
        path,
        `data has ${t.data.byteLength} bytes but shape [${t.shape.join(', ')}] of ${t.dtype} needs ${byteLength}`,
        t.name,
      );
    entries[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + byteLength] };
    byteLengths.push(byteLength);
    offset += byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(entries));
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  return { header: padded, byteLengths };
}
