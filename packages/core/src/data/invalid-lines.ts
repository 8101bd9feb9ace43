// Collects invalid lines while files stream by. Under the 'error' policy reading stops after a few, so
// a broken multi-GB file fails in seconds while still showing more than the first problem; under
// 'skip' every bad line is counted and the first few are kept for the report.
import { DataFormatError, formatInvalidLine, type InvalidLine } from './errors.js';

/** What to do with a line that is not a valid record. */
export type InvalidLinePolicy = 'error' | 'skip';

/** How many invalid lines an error message or report lists. */
export const LISTED_INVALID_LINES = 5;

export class InvalidLineLog {
  private readonly listed: InvalidLine[] = [];
  private total = 0;

  constructor(readonly policy: InvalidLinePolicy = 'error') {}

  /** The number of invalid lines seen. */
  get count(): number {
    return this.total;
  }

  /** The first few invalid lines, in reading order. */
  get first(): readonly InvalidLine[] {
    return this.listed;
  }

  /** Records a bad line; under 'error', throws once enough are listed to show the pattern. */
  add(bad: InvalidLine): void {
    this.total++;
    if (this.listed.length < LISTED_INVALID_LINES) this.listed.push(bad);
    if (this.policy === 'error' && this.total >= LISTED_INVALID_LINES) throw this.error(true);
  }

  /** Under 'error', throws if any line was invalid (call when the input is exhausted). */
  finish(): void {
    if (this.policy === 'error' && this.total > 0) throw this.error(false);
  }

  private error(stoppedEarly: boolean): DataFormatError {
    const count = stoppedEarly ? `at least ${this.total}` : `${this.total}`;
    const lines = this.listed.map((bad) => `  ${formatInvalidLine(bad)}`).join('\n');
    return new DataFormatError(
      `${count} invalid data line${this.total === 1 ? '' : 's'} (reading stopped; ` +
        `use --invalid-lines skip, the 'skip' policy, to leave them out and count them):\n${lines}`,
      this.listed,
    );
  }
}
