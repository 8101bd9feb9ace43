// The safetensors dtypes this project reads and writes, with their element sizes and the typed array
// that holds their little-endian bytes. 16-bit floats are held as raw bits in a Uint16Array.

export const SAFETENSORS_DTYPES = {
  BOOL: { bytes: 1, array: Uint8Array },
  U8: { bytes: 1, array: Uint8Array },
  I8: { bytes: 1, array: Int8Array },
  U16: { bytes: 2, array: Uint16Array },
  I16: { bytes: 2, array: Int16Array },
  F16: { bytes: 2, array: Uint16Array },
  BF16: { bytes: 2, array: Uint16Array },
  U32: { bytes: 4, array: Uint32Array },
  I32: { bytes: 4, array: Int32Array },
  F32: { bytes: 4, array: Float32Array },
  U64: { bytes: 8, array: BigUint64Array },
  I64: { bytes: 8, array: BigInt64Array },
  F64: { bytes: 8, array: Float64Array },
} as const;

export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPES;

/** The typed array each dtype is read into. */
export interface DtypeArrays {
  BOOL: Uint8Array;
  U8: Uint8Array;
  I8: Int8Array;
  U16: Uint16Array;
  I16: Int16Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  U32: Uint32Array;
  I32: Int32Array;
  F32: Float32Array;
  U64: BigUint64Array;
  I64: BigInt64Array;
  F64: Float64Array;
}

export type TensorArray = DtypeArrays[SafetensorsDtype];

export const FLOAT_DTYPES: readonly SafetensorsDtype[] = ['F16', 'BF16', 'F32', 'F64'];

export function isSafetensorsDtype(name: string): name is SafetensorsDtype {
  return Object.hasOwn(SAFETENSORS_DTYPES, name);
}

export function dtypeByteSize(dtype: SafetensorsDtype): number {
  return SAFETENSORS_DTYPES[dtype].bytes;
}

/** A view of `bytes` as the dtype's typed array (no copy; `bytes` must be aligned to the element size). */
export function viewAsDtype<D extends SafetensorsDtype>(dtype: D, bytes: Uint8Array): DtypeArrays[D] {
  const { array, bytes: size } = SAFETENSORS_DTYPES[dtype];
  // The constructors differ per dtype; all take (buffer, byteOffset, length).
  const construct = array as unknown as new (
    buffer: ArrayBufferLike,
    byteOffset: number,
    length: number,
  ) => DtypeArrays[D];
  return new construct(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
