// Data problems name the file and line they come from, so a bad record in a large corpus can be found
// and fixed without bisecting the file.

/** Where a record came from: a file and a 1-based line number. */
export interface RecordSource {
  readonly file: string;
  readonly line: number;
}

/** One line that could not be used, and why. */
export interface InvalidLine extends RecordSource {
  readonly problem: string;
}

/** A data file (or the data as a whole) that cannot be used; `invalidLines` lists what was found. */
export class DataFormatError extends Error {
  override readonly name = 'DataFormatError';
  constructor(
    message: string,
    readonly invalidLines: readonly InvalidLine[] = [],
  ) {
    super(message);
  }
}

/** `file:line: problem`, the form editors and terminals recognise as a location. */
export function formatInvalidLine(bad: InvalidLine): string {
  return `${bad.file}:${bad.line}: ${bad.problem}`;
}
