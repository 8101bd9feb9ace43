// Streams a text file line by line, so a multi-GB corpus is never held as one string.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface NumberedLine {
  /** 1-based, as editors count. */
  readonly line: number;
  /** The line without its terminator (\n or \r\n) and, on line 1, without a UTF-8 byte-order mark. */
  readonly text: string;
}

export async function* readLines(path: string): AsyncGenerator<NumberedLine> {
  const input = createReadStream(path, { encoding: 'utf8' });
  // crlfDelay: Infinity makes \r\n one line break even when \r and \n arrive in different chunks.
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const raw of lines) {
      line++;
      yield { line, text: line === 1 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw };
    }
  } finally {
    lines.close();
    input.destroy();
  }
}
