// A safetensors file opened lazily: only the header is read at open; each tensor's bytes are read
// from the open file handle when asked for, so a 14 GB checkpoint is never held in memory at once.
import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { HfFormatError } from './errors.js';
import {
  HEADER_LENGTH_PREFIX_BYTES,
  parseHeaderLength,
  parseSafetensorsHeader,
  type SafetensorsHeader,
} from './safetensors-header.js';
import { TensorReader, type TensorSourceInfo } from './tensor-reader.js';

// Typed arrays use the machine's byte order and safetensors is little-endian: views would be wrong.
if (endianness() !== 'LE') throw new Error('lsp-offload reads safetensors only on little-endian machines');

/** Node refuses single reads above 2 GiB; larger tensors are read in pieces. */
const MAX_READ_BYTES = 1 << 30;

export class SafetensorsFile extends TensorReader {
  readonly tensors: ReadonlyMap<string, TensorSourceInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Bytes read from the file so far (header included): shows that reads stay lazy. */
  bytesRead = 0;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    header: SafetensorsHeader,
    readonly fileByteLength: number,
  ) {
    super();
    this.metadata = header.metadata;
    this.tensors = new Map([...header.tensors].map(([name, info]) => [name, { ...info, file: path }]));
  }

  /** Opens the file and reads and validates its header; no tensor data is read. */
  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      throw new HfFormatError(path, `cannot open: ${(e as Error).message}`);
    }
    try {
      const size = (await handle.stat()).size;
      const prefix = new Uint8Array(HEADER_LENGTH_PREFIX_BYTES);
      const prefixRead = await readFully(handle, prefix, 0);
      const headerLength = parseHeaderLength(path, prefix.subarray(0, prefixRead), size);
      const headerBytes = new Uint8Array(headerLength);
      const headerRead = await readFully(handle, headerBytes, HEADER_LENGTH_PREFIX_BYTES);
      if (headerRead !== headerLength)
        throw new HfFormatError(path, 'corrupt header: the file ended inside the header (truncated)');
      const file = new SafetensorsFile(path, handle, parseSafetensorsHeader(path, headerBytes, size), size);
      file.bytesRead = HEADER_LENGTH_PREFIX_BYTES + headerLength;
      return file;
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async readInto(name: string, dest: Uint8Array): Promise<void> {
    const info = this.info(name);
    if (dest.byteLength !== info.byteLength)
      throw new HfFormatError(
        this.path,
        `destination has ${dest.byteLength} bytes, the tensor ${info.byteLength}`,
        name,
      );
    const got = await readFully(this.handle, dest, info.fileOffset);
    this.bytesRead += got;
    if (got !== info.byteLength)
      throw new HfFormatError(
        this.path,
        `truncated tensor: the file ended after ${got} of its ${info.byteLength} bytes (was it changed after opening?)`,
        name,
      );
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  protected describe(): string {
    return this.path;
  }
}

/** Reads until `dest` is full or the file ends; returns the bytes read. */
async function readFully(handle: FileHandle, dest: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < dest.byteLength) {
    const length = Math.min(dest.byteLength - done, MAX_READ_BYTES);
    const { bytesRead } = await handle.read(dest, done, length, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}
