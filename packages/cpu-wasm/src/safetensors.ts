// A small safetensors encoder/decoder (https://github.com/huggingface/safetensors, format section):
// 8-byte little-endian header length, a JSON header, then the tensors' bytes back to back. Kept inside
// this package so it stands alone. Encoding returns parts (header + views) so large state can be
// streamed to disk without one giant buffer; decoding returns views into the input (no copies).

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Raw little-endian bytes; may be given as several parts that concatenate to the tensor. */
  data: Uint8Array | readonly Uint8Array[];
}

export interface DecodedTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

export interface DecodedSafetensors {
  metadata: Record<string, string>;
  tensors: Map<string, DecodedTensor>;
}

/** Header larger than this is refused (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

function parts(data: SafetensorsTensor['data']): readonly Uint8Array[] {
  return data instanceof Uint8Array ? [data] : data;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Encode to a list of byte parts (header first); concatenate them (or write them in order) for the file. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsTensor> | Iterable<[string, SafetensorsTensor]>,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  const body: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new RangeError('safetensors: "__metadata__" is not a tensor name');
    if (header[name] !== undefined) throw new RangeError(`safetensors: duplicate tensor "${name}"`);
    const bytes = parts(t.data).reduce((a, p) => a + p.byteLength, 0);
    const want = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
    if (bytes !== want)
      throw new RangeError(`safetensors: "${name}" has ${bytes} bytes, ${t.dtype}[${t.shape}] needs ${want}`);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
    body.push(...parts(t.data));
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data starts 8-byte aligned (what the reference writer does).
  const headerLen = json.length + ((8 - (json.length % 8)) % 8);
  const head = new Uint8Array(8 + headerLen).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLen), true);
  head.set(json, 8);
  return [head, ...body];
}

/** Concatenate parts into one buffer. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const total = chunks.reduce((a, c) => a + c.byteLength, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * Random access to bytes that may not fit in one buffer (Node 20 caps a typed array at 4 GiB), such as a
 * file: copy `dst.byteLength` bytes starting at `position` into `dst`.
 */
export interface ByteSource {
  readonly byteLength: number;
  readInto(position: number, dst: Uint8Array): void;
}

/** A ByteSource over bytes in memory. */
export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    byteLength: bytes.byteLength,
    readInto: (position, dst) => dst.set(bytes.subarray(position, position + dst.byteLength)),
  };
}

/** Where a tensor's bytes are: [begin, end) of the source. */
export interface TensorEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

/** Read and validate the header of safetensors bytes; tensor positions are absolute in `source`. */
export function readSafetensorsHeader(source: ByteSource): SafetensorsHeader {
  const fail = (why: string): never => {
    throw new RangeError(`safetensors: ${why}`);
  };
  const size = source.byteLength;
  if (size < 8) fail(`${size} bytes is too short for a header`);
  const lenBytes = new Uint8Array(8);
  source.readInto(0, lenBytes);
  const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES || headerLen > size - 8)
    fail(`header length ${headerLen} does not fit in ${size} bytes`);
  const json = new Uint8Array(headerLen);
  source.readInto(8, json);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not an object');
  const dataStart = 8 + headerLen;
  const dataBytes = size - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorEntry>();
  const spans: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`metadata "${k}" is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = e.dtype as SafetensorsDtype;
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES))
      fail(`"${name}" has unknown dtype ${e.dtype}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(`"${name}" has an invalid shape`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0))
      fail(`"${name}" has invalid data_offsets`);
    const [begin, end] = offs as [number, number];
    const want = elementCount(shape as number[]) * DTYPE_BYTES[dtype];
    if (end < begin || end - begin !== want)
      fail(`"${name}": data_offsets [${begin}, ${end}] do not match ${dtype}[${shape}] (${want} bytes)`);
    if (end > dataBytes) fail(`"${name}" ends at byte ${end}, past the data (${dataBytes} bytes)`);
    spans.push([begin, end, name]);
    tensors.set(name, { dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end });
  }
  // The format forbids overlaps and holes: the spans must tile the data exactly.
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== at) fail(`"${name}" starts at byte ${begin}, expected ${at} (overlap or hole)`);
    at = end;
  }
  if (at !== dataBytes) fail(`${dataBytes - at} bytes after the last tensor`);
  return { metadata, tensors };
}

/** Decode and validate bytes in memory; tensors' data are views into `input` (no copies). */
export function decodeSafetensors(input: Uint8Array): DecodedSafetensors {
  // A plain Uint8Array view, so the returned views behave as such even for a Node Buffer (whose
  // slice() does not copy).
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const header = readSafetensorsHeader(bytesSource(bytes));
  const tensors = new Map<string, DecodedTensor>();
  for (const [name, t] of header.tensors)
    tensors.set(name, { dtype: t.dtype, shape: t.shape, data: bytes.subarray(t.begin, t.end) });
  return { metadata: header.metadata, tensors };
}
