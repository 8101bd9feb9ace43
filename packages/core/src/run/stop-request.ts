// A request to end a training run early (Ctrl-C, SIGTERM): the loop finishes the step it is in, saves a
// checkpoint when it has a checkpoint folder, and returns a summary that says it stopped.
export class StopRequest {
  private why: string | undefined;

  /** Ask the run to stop after its current step; `reason` (e.g. 'SIGINT') is kept for the summary. */
  request(reason: string): void {
    this.why ??= reason;
  }

  get requested(): boolean {
    return this.why !== undefined;
  }

  get reason(): string | undefined {
    return this.why;
  }
}
