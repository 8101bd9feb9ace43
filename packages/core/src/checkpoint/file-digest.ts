// Size and SHA-256 of a checkpoint file, recorded in the manifest at save time and checked at load time:
// the safetensors readers catch a file cut short inside its header or tensors, but not one whose bytes were
// changed, nor the optimizer state that is read as a single blob.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { CheckpointError } from './errors.js';

export interface FileDigest {
  readonly bytes: number;
  /** Lower-case hex. */
  readonly sha256: string;
}

export async function digestFile(path: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) {
    const piece = chunk as Buffer;
    hash.update(piece);
    bytes += piece.byteLength;
  }
  return { bytes, sha256: hash.digest('hex') };
}

export function digestBytes(bytes: Uint8Array): FileDigest {
  return { bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Throws a CheckpointError naming `path` when its size (and, with `checksum`, its SHA-256) differs. */
export async function verifyFile(path: string, expected: FileDigest, checksum: boolean): Promise<void> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw new CheckpointError(path, `missing: the manifest lists it (${(e as Error).message})`);
  }
  if (size !== expected.bytes)
    throw new CheckpointError(
      path,
      size < expected.bytes
        ? `truncated: ${size} bytes, the manifest says ${expected.bytes}`
        : `${size} bytes, the manifest says ${expected.bytes}: the file was changed after the save`,
    );
  if (!checksum) return;
  const actual = await digestFile(path);
  if (actual.sha256 !== expected.sha256) throw checksumMismatch(path, actual.sha256, expected.sha256);
}

export function checksumMismatch(path: string, actual: string, expected: string): CheckpointError {
  return new CheckpointError(
    path,
    `corrupt: SHA-256 ${actual.slice(0, 16)}... differs from the manifest's ${expected.slice(0, 16)}...`,
  );
}
