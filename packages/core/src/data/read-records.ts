// Reads the records of several data files in order, choosing the reader by the file's extension.
import { statSync } from 'node:fs';
import { extname } from 'node:path';
import { DataFormatError } from './errors.js';
import type { InvalidLineLog } from './invalid-lines.js';
import { readJsonlRecords } from './jsonl-reader.js';
import type { SourcedRecord } from './records.js';
import { readTextDocuments, type TextDocumentSplit } from './text-reader.js';

export interface ReadRecordsOptions {
  /** Collects invalid lines; under its 'error' policy reading stops with a DataFormatError. */
  readonly invalid: InvalidLineLog;
  /** How .txt files are cut into documents (default: at blank lines). */
  readonly textDocuments?: TextDocumentSplit;
}

/** The data formats by file extension, for messages. */
export const DATA_FILE_KINDS = '.jsonl (JSON records) or .txt (plain text)';

/**
 * Every record of `files`, in order. Throws a DataFormatError for a missing file or an unknown
 * extension before reading anything, and (policy 'error') when invalid lines are found.
 */
export async function* readRecords(
  files: readonly string[],
  options: ReadRecordsOptions,
): AsyncGenerator<SourcedRecord> {
  if (files.length === 0) throw new DataFormatError('no data files given');
  for (const file of files) checkDataFile(file);
  for (const file of files) {
    if (extname(file).toLowerCase() === '.jsonl') yield* readJsonlRecords(file, options.invalid);
    else yield* readTextDocuments(file, options.textDocuments ?? 'blank-lines', options.invalid);
  }
  options.invalid.finish();
}

function checkDataFile(file: string): void {
  const ext = extname(file).toLowerCase();
  if (ext !== '.jsonl' && ext !== '.txt')
    throw new DataFormatError(`${file}: unknown data format "${ext}"; use ${DATA_FILE_KINDS}`);
  let isFile: boolean;
  try {
    isFile = statSync(file).isFile();
  } catch {
    throw new DataFormatError(`${file}: not found`);
  }
  if (!isFile) throw new DataFormatError(`${file}: not a file`);
}
