// Plain text files. By default a blank line (or a run of them) separates documents, the usual layout
// of text corpora, and lets a large file stream document by document; 'file' makes the whole file one
// document (it is then held in memory whole). Each document becomes one text record whose line
// breaks are kept, and is followed by EOS when tokenized.
import type { InvalidLineLog } from './invalid-lines.js';
import { readLines } from './line-reader.js';
import type { SourcedRecord } from './records.js';

/** How a .txt file is cut into documents. */
export type TextDocumentSplit = 'blank-lines' | 'file';

export async function* readTextDocuments(
  file: string,
  split: TextDocumentSplit,
  invalid: InvalidLineLog,
): AsyncGenerator<SourcedRecord> {
  let lines: string[] = [];
  let firstLine = 0;
  let documents = 0;
  const document = (): SourcedRecord => ({
    record: { kind: 'text', text: lines.join('\n') },
    format: 'text',
    source: { file, line: firstLine },
  });
  for await (const { line, text, problem } of readLines(file)) {
    if (problem) {
      invalid.add({ file, line, problem });
      continue;
    }
    const blank = text.trim() === '';
    if (split === 'blank-lines' && blank) {
      if (lines.length > 0) {
        documents++;
        yield document();
        lines = [];
      }
      continue;
    }
    // In 'file' mode leading blank lines are not part of the document; inner ones are.
    if (lines.length === 0 && blank) continue;
    if (lines.length === 0) firstLine = line;
    lines.push(text);
  }
  if (split === 'file') while (lines.length > 0 && lines.at(-1)!.trim() === '') lines.pop();
  if (lines.length > 0) {
    documents++;
    yield document();
  }
  if (documents === 0) invalid.add({ file, line: 1, problem: 'the file has no text' });
}
