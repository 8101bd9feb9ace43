// One error type for a checkpoint that cannot be saved, loaded or resumed from. It names the file (or
// directory) and says what is wrong in words, so the CLI can print it as is and the user knows where to look.
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    /** The file or directory the problem is in. */
    readonly file: string,
    /** What is wrong, in words. */
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${problem}`, options);
  }
}
