// The readers: streaming lines, JSONL in its three layouts, plain text documents, and invalid lines
// reported by file and line under both policies.
import { describe, expect, it } from 'vitest';
import {
  DataFormatError,
  InvalidLineLog,
  readLines,
  readRecords,
  type InvalidLinePolicy,
  type SourcedRecord,
  type TextDocumentSplit,
} from '../../src/data/index.js';
import { alpacaPrompt } from '../../src/data/alpaca-template.js';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { dataFile, jsonl } from './helpers.js';

async function readAll(
  files: string[],
  policy: InvalidLinePolicy = 'error',
  textDocuments?: TextDocumentSplit,
): Promise<{ records: SourcedRecord[]; invalid: InvalidLineLog }> {
  const invalid = new InvalidLineLog(policy);
  const records: SourcedRecord[] = [];
  for await (const r of readRecords(files, { invalid, ...(textDocuments ? { textDocuments } : {}) }))
    records.push(r);
  return { records, invalid };
}

async function errorOf(promise: Promise<unknown>): Promise<DataFormatError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DataFormatError);
  return error as DataFormatError;
}

describe('readLines', () => {
  it('numbers lines from 1, handles CRLF, strips a byte-order mark, keeps a last line without newline', async () => {
    const file = dataFile('a.txt', '\uFEFFfirst\r\nsecond\n\nlast');
    const lines = [];
    for await (const l of readLines(file)) lines.push(l);
    expect(lines).toEqual([
      { line: 1, text: 'first' },
      { line: 2, text: 'second' },
      { line: 3, text: '' },
      { line: 4, text: 'last' },
    ]);
  });

  it('streams a file larger than its read chunks line by line', async () => {
    const body = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${'x'.repeat(i % 50)}`).join('\n');
    const file = dataFile('big.txt', body);
    let count = 0;
    let last = '';
    for await (const l of readLines(file)) {
      count++;
      last = l.text;
    }
    expect([count, last]).toEqual([20_000, `line 19999 ${'x'.repeat(19999 % 50)}`]);
  });
});

describe('JSONL records', () => {
  it('reads prompt/response, alpaca (with and without input) and text records, with their line numbers', async () => {
    const file = dataFile(
      'd.jsonl',
      jsonl(
        { prompt: 'Q: 2+2?', response: ' 4', id: 7 },
        { instruction: 'Add.', input: '2 and 2', output: '4' },
        { instruction: 'Say hi.', input: '', output: 'hi' },
        { instruction: 'Say bye.', output: 'bye' },
        { text: 'plain text' },
      ),
    );
    const { records } = await readAll([file]);
    expect(records.map((r) => [r.format, r.source.line])).toEqual([
      ['prompt-response', 1],
      ['alpaca', 2],
      ['alpaca', 3],
      ['alpaca', 4],
      ['text', 5],
    ]);
    expect(records.map((r) => r.record)).toEqual([
      { kind: 'prompt-response', prompt: 'Q: 2+2?', response: ' 4' },
      { kind: 'prompt-response', prompt: alpacaPrompt('Add.', '2 and 2'), response: '4' },
      { kind: 'prompt-response', prompt: alpacaPrompt('Say hi.'), response: 'hi' },
      { kind: 'prompt-response', prompt: alpacaPrompt('Say bye.'), response: 'bye' },
      { kind: 'text', text: 'plain text' },
    ]);
    expect(records[0]!.source.file).toBe(file);
  });

  it('stops with an error naming file:line and the problem of each invalid line', async () => {
    const file = dataFile(
      'bad.jsonl',
      [
        JSON.stringify({ prompt: 'p', response: 'r' }),
        '{"prompt": "p", "response": ',
        '',
        JSON.stringify({ prompt: 'p' }),
        JSON.stringify({ prompt: 'p', response: 3 }),
      ].join('\n'),
    );
    const error = await errorOf(readAll([file]));
    expect(error.message).toMatch(/^3 invalid data lines/);
    expect(error.message).toContain(`${file}:2: not valid JSON`);
    expect(error.message).toContain(`${file}:4: missing the field "response"`);
    expect(error.message).toContain(`${file}:5: the field "response" is a number, not a string`);
    expect(error.invalidLines.map((b) => b.line)).toEqual([2, 4, 5]);
  });

  it('explains each kind of bad record', async () => {
    const lines = [
      '[1, 2]',
      '"text"',
      JSON.stringify({ question: 'q', answer: 'a' }),
      JSON.stringify({ prompt: 'p', response: 'r', text: 't' }),
      JSON.stringify({ prompt: 'p', response: '   ' }),
      JSON.stringify({ instruction: 'i', input: null, output: 'o' }),
      JSON.stringify({ text: ['a'] }),
      JSON.stringify({ instruction: '', output: 'o' }),
    ];
    const { invalid } = await readAll([dataFile('bad.jsonl', lines.join('\n'))], 'skip');
    expect(invalid.count).toBe(8);
    // Only the first few are kept for the report.
    expect(invalid.first.map((b) => [b.line, b.problem])).toEqual([
      [1, expect.stringMatching(/expected a JSON object/)],
      [2, expect.stringMatching(/expected a JSON object/)],
      [3, expect.stringMatching(/has none of the fields/)],
      [4, expect.stringMatching(/mixes the fields of several formats \(text, prompt-response\)/)],
      [5, 'the field "response" is empty'],
    ]);
  });

  it('stops early on a file full of bad lines, saying it saw at least that many', async () => {
    const file = dataFile('junk.jsonl', Array.from({ length: 1000 }, () => 'not json').join('\n'));
    const error = await errorOf(readAll([file]));
    expect(error.message).toMatch(/^at least 5 invalid data lines/);
    expect(error.invalidLines.map((b) => b.line)).toEqual([1, 2, 3, 4, 5]);
  });

  it("with 'skip', leaves invalid lines out and counts them", async () => {
    const file = dataFile(
      'mixed.jsonl',
      ['{"text": "a"}', 'oops', '{"text": "b"}', '', '{"text": "c"}'].join('\n'),
    );
    const { records, invalid } = await readAll([file], 'skip');
    expect(records.map((r) => r.source.line)).toEqual([1, 3, 5]);
    expect(invalid.count).toBe(1);
    expect(invalid.first.map((b) => `${b.file}:${b.line}`)).toEqual([`${file}:2`]);
  });

  it('skips blank lines (a trailing one, whitespace-only ones, CRLF ones): they are not records', async () => {
    const file = dataFile('blank.jsonl', '{"text": "a"}\n\n{"text": "b"}\r\n  \t\r\n{"text": "c"}\n\n');
    const { records, invalid } = await readAll([file]);
    expect(records.map((r) => [r.source.line, r.record])).toEqual([
      [1, { kind: 'text', text: 'a' }],
      [3, { kind: 'text', text: 'b' }],
      [5, { kind: 'text', text: 'c' }],
    ]);
    expect(invalid.count).toBe(0);
  });

  it('reports bytes that are not UTF-8 as file:line (JSONL and text), or skips those lines', async () => {
    const dir = dirname(dataFile('x.txt', ''));
    const jsonlFile = join(dir, 'latin1.jsonl');
    // line 2 holds "café" in Latin-1 (0xe9 alone); line 3 a truncated 3-byte sequence at the end
    writeFileSync(
      jsonlFile,
      Buffer.concat([
        Buffer.from('{"text": "ok"}\n{"text": "caf'),
        Buffer.from([0xe9]),
        Buffer.from('"}\n{"text": "x'),
        Buffer.from([0xe2, 0x82]),
        Buffer.from('\n{"text": "é fine"}\n'),
      ]),
    );
    const error = await errorOf(readAll([jsonlFile]));
    expect(error.message).toMatch(/^2 invalid data lines/);
    expect(error.message).toContain(`${jsonlFile}:2: not valid UTF-8 (byte 0xe9 at column 14`);
    expect(error.message).toContain(`${jsonlFile}:3: not valid UTF-8 (byte 0xe2 at column 12`);
    const skipped = await readAll([jsonlFile], 'skip');
    expect(skipped.records.map((r) => r.source.line)).toEqual([1, 4]);
    expect(skipped.records[1]!.record).toEqual({ kind: 'text', text: 'é fine' });
    const textFile = join(dir, 'latin1.txt');
    writeFileSync(textFile, Buffer.concat([Buffer.from('one\ntw'), Buffer.from([0xff]), Buffer.from('o\n')]));
    const textError = await errorOf(readAll([textFile]));
    expect(textError.message).toContain(`${textFile}:2: not valid UTF-8 (byte 0xff at column 3`);
  });
});

describe('plain text', () => {
  it('splits documents at blank lines (whitespace-only counts), keeping line breaks inside', async () => {
    const file = dataFile('t.txt', '\n\nfirst line\nsecond line\n\n  \n\nnext doc\n\n');
    const { records } = await readAll([file]);
    expect(records.map((r) => [r.record, r.source.line])).toEqual([
      [{ kind: 'text', text: 'first line\nsecond line' }, 3],
      [{ kind: 'text', text: 'next doc' }, 8],
    ]);
  });

  it("makes the whole file one document with 'file'", async () => {
    const file = dataFile('t.txt', '\ntitle\n\nbody\n\n');
    const { records } = await readAll([file], 'error', 'file');
    expect(records.map((r) => [r.record, r.source.line])).toEqual([
      [{ kind: 'text', text: 'title\n\nbody' }, 2],
    ]);
  });

  it('reports a file with no text', async () => {
    const file = dataFile('empty.txt', '\n  \n');
    const error = await errorOf(readAll([file]));
    expect(error.message).toContain(`${file}:1: the file has no text`);
  });
});

describe('readRecords', () => {
  it('reads several files in order, each by its extension', async () => {
    const a = dataFile('a.txt', 'doc a');
    const b = dataFile('b.JSONL', jsonl({ prompt: 'p', response: 'r' }));
    const { records } = await readAll([b, a]);
    expect(records.map((r) => [r.source.file, r.record.kind])).toEqual([
      [b, 'prompt-response'],
      [a, 'text'],
    ]);
  });

  it('refuses unknown extensions, missing files and directories before reading anything', async () => {
    const good = dataFile('good.jsonl', jsonl({ text: 'x' }));
    expect((await errorOf(readAll([good, dataFile('d.csv', 'a,b')]))).message).toMatch(
      /d\.csv: unknown data format "\.csv"; use \.jsonl/,
    );
    expect((await errorOf(readAll([`${good}.missing.txt`]))).message).toMatch(/missing\.txt: not found/);
    expect((await errorOf(readAll([]))).message).toBe('no data files given');
  });
});
