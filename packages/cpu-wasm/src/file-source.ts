// A ByteSource over a file, read with positioned reads straight into the destination (for state files
// larger than one buffer can hold).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { ByteSource } from './safetensors.js';

/** Reads at most this much per call (readSync refuses more than 2 GiB - 1 at once). */
const CHUNK = 1 << 30;

export interface FileSource extends ByteSource {
  close(): void;
}

export function openFileSource(path: string): FileSource {
  const fd = openSync(path, 'r');
  const byteLength = fstatSync(fd).size;
  return {
    byteLength,
    readInto(position: number, dst: Uint8Array): void {
      let done = 0;
      while (done < dst.byteLength) {
        const n = readSync(fd, dst, done, Math.min(CHUNK, dst.byteLength - done), position + done);
        if (n === 0) throw new RangeError(`${path}: ended at byte ${position + done} of ${byteLength}`);
        done += n;
      }
    },
    close: () => closeSync(fd),
  };
}
