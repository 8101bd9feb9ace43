// Row blocks of a parameter for the CPU optimizer. A large dense parameter stepped as one tensor waits
// for its whole gradient before its step starts, and its upload waits for the whole step; in row blocks
// of a few tens of MiB the three overlap. AdamW is element-wise, so the blocks give the same numbers.
import type { ParameterSpec } from '../hf/index.js';

export interface RowShard {
  /** The CPU optimizer's name for the block: the HF name, with the row range when there are several. */
  name: string;
  rowStart: number;
  rowEnd: number;
}

/** Rows [0, rows) in blocks whose f32 values stay within about `shardBytes` (one block if they fit). */
export function rowShards(spec: ParameterSpec, shardBytes: number): RowShard[] {
  const rows = spec.shape[0]!;
  const rowBytes = 4 * spec.shape.slice(1).reduce((a, b) => a * b, 1);
  if (!(shardBytes > 0)) throw new RangeError(`optimizerShardBytes must be positive, got ${shardBytes}`);
  // transfers move whole 4-byte words: with an odd row length, fp16 blocks start at even rows
  const align = (rowBytes / 4) % 2 === 1 ? 2 : 1;
  const count = Math.min(Math.floor(rows / align), Math.max(1, Math.ceil((rows * rowBytes) / shardBytes)));
  if (count <= 1) return [{ name: spec.name, rowStart: 0, rowEnd: rows }];
  const out: RowShard[] = [];
  const boundary = (k: number) => (k === count ? rows : Math.floor((k * rows) / count / align) * align);
  for (let k = 0; k < count; k++) {
    const rowStart = boundary(k);
    const rowEnd = boundary(k + 1);
    out.push({ name: `${spec.name}[${rowStart}:${rowEnd}]`, rowStart, rowEnd });
  }
  return out;
}
