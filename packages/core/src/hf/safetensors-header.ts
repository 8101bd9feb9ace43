// Parsing and validating a safetensors header. The format: an 8-byte little-endian header length N,
// N bytes of JSON `{ "__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]} }`,
// then the data section; offsets are relative to the data section. Validation follows the reference
// (Rust) implementation: tensors tile the data section exactly, with no gap, overlap or trailing bytes.
import { HfFormatError } from './errors.js';
import {
  SAFETENSORS_DTYPES,
  dtypeByteSize,
  isSafetensorsDtype,
  type SafetensorsDtype,
} from './safetensors-dtypes.js';

/** The reference implementation refuses headers over 100 MB: anything larger is corrupt, not big. */
export const MAX_HEADER_BYTES = 100_000_000;
export const HEADER_LENGTH_PREFIX_BYTES = 8;

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute position of the tensor's first byte in the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in the order of their bytes in the file. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** Where the data section starts (8 + N). */
  readonly dataOffset: number;
}

/** Reads N from the 8-byte prefix and checks it against the file size. */
export function parseHeaderLength(file: string, prefix: Uint8Array, fileByteLength: number): number {
  if (fileByteLength < HEADER_LENGTH_PREFIX_BYTES || prefix.byteLength < HEADER_LENGTH_PREFIX_BYTES)
    throw new HfFormatError(
      file,
      `corrupt header: the file is ${fileByteLength} bytes, too short for the 8-byte header length (not a safetensors file, or truncated)`,
    );
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES))
    throw new HfFormatError(
      file,
      `corrupt header: header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
    );
  const n = Number(length);
  if (n < 2)
    throw new HfFormatError(file, `corrupt header: header length ${n} is too small to hold a JSON object`);
  if (HEADER_LENGTH_PREFIX_BYTES + n > fileByteLength)
    throw new HfFormatError(
      file,
      `corrupt header: the ${n}-byte header extends past the end of the ${fileByteLength}-byte file (truncated?)`,
    );
  return n;
}

/** Parses the JSON header and checks every tensor entry against the data section of the file. */
export function parseSafetensorsHeader(
  file: string,
  headerBytes: Uint8Array,
  fileByteLength: number,
): SafetensorsHeader {
  const dataOffset = HEADER_LENGTH_PREFIX_BYTES + headerBytes.byteLength;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new HfFormatError(file, 'corrupt header: the header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new HfFormatError(file, `corrupt header: the header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) throw new HfFormatError(file, 'corrupt header: the header is not a JSON object');

  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] =
    [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, value);
      continue;
    }
    entries.push({ name, ...parseTensorEntry(file, name, value) });
  }

  const dataByteLength = fileByteLength - dataOffset;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: (typeof entries)[number] | undefined;
  for (const entry of entries) {
    const previousEnd = previous?.end ?? 0;
    if (entry.begin < previousEnd)
      throw new HfFormatError(
        file,
        `corrupt header: overlapping ranges: data_offsets [${entry.begin}, ${entry.end}] overlap tensor "${previous?.name}" at [${previous?.begin}, ${previous?.end}]`,
        entry.name,
      );
    if (entry.begin > previousEnd)
      throw new HfFormatError(
        file,
        `corrupt header: data_offsets [${entry.begin}, ${entry.end}] leave a gap of ${entry.begin - previousEnd} bytes after ${previous ? `tensor "${previous.name}"` : 'the start of the data section'}`,
        entry.name,
      );
    if (entry.end > dataByteLength)
      throw new HfFormatError(
        file,
        `truncated tensor: its bytes [${entry.begin}, ${entry.end}) of the data section extend past the end of the file, whose data section has only ${dataByteLength} bytes`,
        entry.name,
      );
    previous = entry;
  }
  const usedBytes = previous?.end ?? 0;
  if (usedBytes !== dataByteLength)
    throw new HfFormatError(
      file,
      `corrupt header: the tensors cover ${usedBytes} bytes but the data section has ${dataByteLength} (${dataByteLength - usedBytes} unexplained trailing bytes)`,
    );

  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const e of entries)
    tensors.set(e.name, {
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      fileOffset: dataOffset + e.begin,
      byteLength: e.end - e.begin,
    });
  return { metadata, tensors, dataOffset };
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (value === null) return {};
  if (!isPlainObject(value))
    throw new HfFormatError(file, 'corrupt header: __metadata__ must be an object of strings');
  for (const [k, v] of Object.entries(value))
    if (typeof v !== 'string')
      throw new HfFormatError(file, `corrupt header: __metadata__ value "${k}" is not a string`);
  return value as Record<string, string>;
}

function parseTensorEntry(
  file: string,
  name: string,
  value: unknown,
): { dtype: SafetensorsDtype; shape: number[]; begin: number; end: number } {
  const bad = (problem: string): HfFormatError => new HfFormatError(file, `corrupt header: ${problem}`, name);
  if (!isPlainObject(value)) throw bad('the entry is not an object with dtype, shape and data_offsets');
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw bad('dtype is missing or not a string');
  if (!isSafetensorsDtype(dtype))
    throw new HfFormatError(
      file,
      `unknown dtype "${dtype}" (supported: ${Object.keys(SAFETENSORS_DTYPES).join(', ')})`,
      name,
    );
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger))
    throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger))
    throw bad(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before they begin`);
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = elements * dtypeByteSize(dtype);
  if (!Number.isSafeInteger(expected) || expected !== end - begin)
    throw bad(
      `shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  return { dtype, shape: shape as number[], begin, end };
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
