// Streams a text file line by line, so a multi-GB corpus is never held as one string. Lines are split on
// the raw bytes and each is checked to be UTF-8: a decoder would otherwise turn stray Latin-1 or binary
// bytes into U+FFFD silently, and the model would train on replacement characters.
import { createReadStream } from 'node:fs';
import { isUtf8 } from 'node:buffer';

export interface NumberedLine {
  /** 1-based, as editors count. */
  readonly line: number;
  /** The line without its terminator (\n or \r\n) and, on line 1, without a UTF-8 byte-order mark. */
  readonly text: string;
  /** Set when the line is not valid UTF-8 (then `text` has U+FFFD in place of the bad bytes). */
  readonly problem?: string;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export async function* readLines(path: string): AsyncGenerator<NumberedLine> {
  const input = createReadStream(path);
  let line = 0;
  let carry: Buffer = Buffer.alloc(0);
  const numbered = (raw: Buffer): NumberedLine => {
    line++;
    let bytes = raw.length && raw[raw.length - 1] === CARRIAGE_RETURN ? raw.subarray(0, -1) : raw;
    if (line === 1 && bytes.subarray(0, 3).equals(BOM)) bytes = bytes.subarray(3);
    const text = bytes.toString('utf8');
    if (isUtf8(bytes)) return { line, text };
    const at = firstInvalidUtf8Byte(bytes);
    return {
      line,
      text,
      problem: `not valid UTF-8 (byte 0x${bytes[at]!.toString(16).padStart(2, '0')} at column ${at + 1}; save the file as UTF-8)`,
    };
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      let start = 0;
      for (let nl = data.indexOf(NEWLINE); nl !== -1; nl = data.indexOf(NEWLINE, start)) {
        yield numbered(data.subarray(start, nl));
        start = nl + 1;
      }
      data = data.subarray(start);
      // a copy, so the stream's chunk is not kept alive by a short tail
      carry = Buffer.from(data);
    }
    if (carry.length) yield numbered(carry);
  } finally {
    input.destroy();
  }
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence (bytes is not UTF-8). */
function firstInvalidUtf8Byte(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const length =
      b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    if (length === 0 || i + length > bytes.length || !isUtf8(bytes.subarray(i, i + length))) return i;
    i += length;
  }
  return 0;
}
