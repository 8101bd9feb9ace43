// The checkpoints of one training run: each save goes to <folder>/checkpoint-<step> (atomically), only
// after the GPU state is found finite, and the oldest beyond --keep-checkpoints are removed once the new
// one is complete. Remembers the last good checkpoint (the run's last save, or the one it resumed from),
// which every failure message names: a diverged model, a disk that filled up mid-save.
import { basename } from 'node:path';
import { FileWriteError } from '../hf/index.js';
import {
  checkpointPath,
  pruneCheckpoints,
  saveCheckpoint,
  type CheckpointContents,
} from '../checkpoint/index.js';
import { countNonFinite, describeNonFinite, trainerStateTensors } from '../trainer/finite-check.js';
import type { Trainer } from '../trainer/trainer.js';

export interface SavedCheckpoint {
  readonly dir: string;
  readonly step: number;
}

export class RunCheckpoints {
  constructor(
    /** The run's --checkpoint-dir (undefined: the run saves nothing). */
    private readonly folder: string | undefined,
    private readonly keep: number,
    /** The checkpoint the run resumed from, if any. */
    private last: SavedCheckpoint | undefined,
    private readonly log: (message: string) => void,
  ) {}

  get lastGood(): SavedCheckpoint | undefined {
    return this.last;
  }

  /** "the last good checkpoint is X (step k): resume from it with a lower --lr", or what to do without one. */
  advice(): string {
    return this.last
      ? `the last good checkpoint is ${this.last.dir} (step ${this.last.step}): resume from it with a lower --lr ` +
          `(--resume ${this.last.dir} --lr ...)`
      : 'no checkpoint of this run was saved before: start again with a lower --lr';
  }

  /** Throws when the trainer's GPU state holds NaN or infinite values (before it is saved or exported). */
  async checkFinite(trainer: Trainer, what: string): Promise<void> {
    await trainer.flush();
    const report = await countNonFinite(trainer.gpu, trainerStateTensors(trainer));
    if (report.total > 0)
      throw new Error(`${what}: ${describeNonFinite(report)}: the run diverged; ${this.advice()}`);
  }

  /** Saves the trainer's state as checkpoint-<step> (nothing when the run has no folder or no new step). */
  async save(contents: CheckpointContents): Promise<void> {
    const { trainer } = contents;
    if (this.folder === undefined) return;
    if (this.last?.step === trainer.step && basename(this.last.dir) === `checkpoint-${trainer.step}`) return;
    const step = trainer.step;
    await this.checkFinite(trainer, `not saving the checkpoint of step ${step}`);
    const dir = checkpointPath(this.folder, step);
    try {
      await saveCheckpoint(dir, contents);
    } catch (e) {
      const problem =
        e instanceof FileWriteError
          ? `cannot write ${basename(e.path)}: ${(e.cause as Error).message}`
          : (e as Error).message;
      const previous = this.last
        ? `the previous checkpoint ${this.last.dir} (step ${this.last.step}) is intact`
        : 'no earlier checkpoint of this run exists';
      throw new Error(`could not save the checkpoint of step ${step} to ${dir}: ${problem}; ${previous}`, {
        cause: e,
      });
    }
    this.last = { dir, step };
    this.log(`saved checkpoint at step ${step} to ${dir}`);
    for (const removed of await pruneCheckpoints(this.folder, this.keep))
      this.log(`removed the older checkpoint ${removed} (--keep-checkpoints ${this.keep})`);
  }
}
