// How often the model's greedy (argmax) prediction is the labelled token, per token and per whole
// answer, computed from the logits the model returns for an evaluation batch. With HF semantics the
// logits at position t predict labels[t + 1]. An answer is a maximal run of consecutive scored labels
// in a row (a response, or the demo task's output), so exact match needs every token of it right.
import { IGNORE_INDEX } from './tokenized-examples.js';

export interface AnswerAccuracyOptions {
  /** The logits' last dimension (the model's vocabulary, which may be larger than the data's). */
  readonly vocabSize: number;
  /** Labels not scored, e.g. an EOS whose position is fixed and so shows little about learning. */
  readonly ignoreLabels?: readonly number[];
}

export interface AnswerAccuracyResult {
  readonly tokens: number;
  readonly correctTokens: number;
  readonly answers: number;
  readonly correctAnswers: number;
  /** correctTokens / tokens (0 when nothing was scored). */
  readonly tokenAccuracy: number;
  /** correctAnswers / answers (0 when nothing was scored). */
  readonly exactMatch: number;
}

/** The part of a batch the metric reads. */
export interface LabelledBatch {
  readonly batch: number;
  readonly seqLen: number;
  readonly labels: ArrayLike<number>;
}

/** Accumulates over the batches of an evaluation. */
export class AnswerAccuracy {
  private tokens = 0;
  private correctTokens = 0;
  private answers = 0;
  private correctAnswers = 0;
  private readonly ignored: ReadonlySet<number>;

  constructor(private readonly options: AnswerAccuracyOptions) {
    if (!Number.isInteger(options.vocabSize) || options.vocabSize <= 0)
      throw new RangeError(`vocabSize ${options.vocabSize} is not a positive integer`);
    this.ignored = new Set([IGNORE_INDEX, ...(options.ignoreLabels ?? [])]);
  }

  /** `logits`: [batch, seqLen, vocabSize], row-major (a Float32Array from the model). */
  add(logits: ArrayLike<number>, batch: LabelledBatch): void {
    const { seqLen, labels } = batch;
    const batchSize = batch.batch;
    const vocab = this.options.vocabSize;
    if (logits.length !== batchSize * seqLen * vocab)
      throw new RangeError(
        `logits have ${logits.length} values, expected batch ${batchSize} x seq ${seqLen} x vocab ${vocab}`,
      );
    for (let b = 0; b < batchSize; b++) {
      let inAnswer = false;
      let answerRight = true;
      // Position 0 of a row has no prediction for it, so scoring starts at the label of position 1.
      for (let t = 1; t < seqLen; t++) {
        const target = labels[b * seqLen + t]!;
        if (this.ignored.has(target)) {
          if (inAnswer) this.closeAnswer(answerRight);
          inAnswer = false;
          continue;
        }
        if (!inAnswer) {
          inAnswer = true;
          answerRight = true;
        }
        const right = argmax(logits, (b * seqLen + t - 1) * vocab, vocab) === target;
        this.tokens++;
        if (right) this.correctTokens++;
        else answerRight = false;
      }
      if (inAnswer) this.closeAnswer(answerRight);
    }
  }

  result(): AnswerAccuracyResult {
    return {
      tokens: this.tokens,
      correctTokens: this.correctTokens,
      answers: this.answers,
      correctAnswers: this.correctAnswers,
      tokenAccuracy: this.tokens === 0 ? 0 : this.correctTokens / this.tokens,
      exactMatch: this.answers === 0 ? 0 : this.correctAnswers / this.answers,
    };
  }

  private closeAnswer(right: boolean): void {
    this.answers++;
    if (right) this.correctAnswers++;
  }
}

/** The index of the largest of `count` values from `offset` (the first one on ties; NaN never wins). */
export function argmax(values: ArrayLike<number>, offset: number, count: number): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < count; i++) {
    const v = values[offset + i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}
