// One error type for everything read from or written to Hugging Face files, so callers (and the CLI)
// can say which file, and which tensor in it, is wrong.

export class HfFormatError extends Error {
  override readonly name = 'HfFormatError';
  constructor(
    /** The file (or directory) the problem is in. */
    readonly file: string,
    /** What is wrong, in words. */
    readonly problem: string,
    /** The tensor concerned, when there is one. */
    readonly tensor?: string,
  ) {
    super(tensor === undefined ? `${file}: ${problem}` : `${file}: tensor "${tensor}": ${problem}`);
  }
}
