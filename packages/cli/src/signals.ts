// Ctrl-C and SIGTERM during `train`: the first asks the run to stop after its current step (it then saves
// a checkpoint when it has a --checkpoint-dir, and the command exits 130 or 143, as a shell expects of a
// process ended by that signal); a second exits at once. Checkpoints are written atomically, so exiting
// mid-save leaves the previous one as it was.
import type { StopRequest } from '@lsp-offload/core';

const EXIT_CODES: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };

/** The exit status of a command stopped by `signal` (128 + its number). */
export function exitCodeOf(signal: string): number {
  return EXIT_CODES[signal] ?? 1;
}

/** Turns SIGINT and SIGTERM into `stop` requests; returns the function that removes the handlers. */
export function stopOnSignals(stop: StopRequest, saves: boolean, log: (line: string) => void): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (stop.requested) {
      log(`second ${signal}: exiting now (the last saved checkpoint stays as it is)`);
      process.exit(exitCodeOf(signal));
    }
    stop.request(signal);
    log(
      `${signal}: stopping after this step${saves ? ' and saving a checkpoint' : ' (no --checkpoint-dir: nothing is saved)'}` +
        ' (Ctrl-C again to exit at once)',
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
