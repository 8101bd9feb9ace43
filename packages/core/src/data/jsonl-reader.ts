// JSONL records, one per line, parsed as the file streams by; blank lines are skipped, bad lines go to
// the invalid-line log with their line number.
import type { InvalidLineLog } from './invalid-lines.js';
import { readLines } from './line-reader.js';
import { recordFromJson, type SourcedRecord } from './records.js';

export async function* readJsonlRecords(
  file: string,
  invalid: InvalidLineLog,
): AsyncGenerator<SourcedRecord> {
  for await (const { line, text, problem } of readLines(file)) {
    if (problem) {
      invalid.add({ file, line, problem });
      continue;
    }
    // blank lines (a trailing one above all) are common in hand-written files: not records, not errors
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      invalid.add({ file, line, problem: `not valid JSON: ${(e as Error).message}` });
      continue;
    }
    const parsed = recordFromJson(value);
    if ('problem' in parsed) {
      invalid.add({ file, line, problem: parsed.problem });
      continue;
    }
    yield { ...parsed, source: { file, line } };
  }
}
