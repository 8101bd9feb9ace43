// The demo task: deterministic, held-out problems disjoint from training, and a metric that scores a
// perfect prediction 1, a wrong one 0, and chance-level guessing near chance.
import { describe, expect, it } from 'vitest';
import {
  AnswerAccuracy,
  DEMO_TOKENS,
  IGNORE_INDEX,
  demoAnswer,
  demoExample,
  demoTask,
  evalBatches,
  type DataBatch,
} from '../../src/data/index.js';
import { Rng } from '../../src/util/rng.js';

/** Logits [batch, seq, vocab] whose argmax at t is `predict(b, t)`. */
function logitsPredicting(
  batch: DataBatch,
  vocab: number,
  predict: (b: number, t: number) => number,
): Float32Array {
  const logits = new Float32Array(batch.batch * batch.seqLen * vocab);
  for (let b = 0; b < batch.batch; b++)
    for (let t = 0; t < batch.seqLen; t++) logits[(b * batch.seqLen + t) * vocab + predict(b, t)] = 5;
  return logits;
}

/** The perfect model: at t, the label of t + 1 (HF shift); anything where there is no label. */
const perfect =
  (batch: DataBatch) =>
  (b: number, t: number): number => {
    const next = t + 1 < batch.seqLen ? batch.labels[b * batch.seqLen + t + 1]! : IGNORE_INDEX;
    return next === IGNORE_INDEX ? 0 : next;
  };

describe('demo task', () => {
  it('writes examples as BOS x SEP y EOS with the loss on y and EOS', () => {
    const { bos, sep, eos, firstSymbol: s } = DEMO_TOKENS;
    expect(demoExample('reverse', [1, 2, 3])).toEqual({
      inputIds: [bos, s + 1, s + 2, s + 3, sep, s + 3, s + 2, s + 1, eos],
      labels: [
        IGNORE_INDEX,
        IGNORE_INDEX,
        IGNORE_INDEX,
        IGNORE_INDEX,
        IGNORE_INDEX,
        s + 3,
        s + 2,
        s + 1,
        eos,
      ],
    });
    expect(demoAnswer('copy', [3, 1, 2])).toEqual([3, 1, 2]);
    expect(demoAnswer('sort', [3, 1, 2, 1])).toEqual([1, 1, 2, 3]);
  });

  it('is a function of its options, with rows of one layout and held-out problems unseen in training', () => {
    const task = demoTask({ seed: 3, trainExamples: 300, heldOutExamples: 60 });
    expect([task.kind, task.vocabSize, task.seqLen, task.chanceTokenAccuracy]).toEqual(['copy', 14, 64, 0.1]);
    const again = demoTask({ seed: 3, trainExamples: 300, heldOutExamples: 60 });
    expect(Array.from(again.train.inputIds)).toEqual(Array.from(task.train.inputIds));
    expect(
      Array.from(demoTask({ seed: 4, trainExamples: 300, heldOutExamples: 60 }).train.inputIds),
    ).not.toEqual(Array.from(task.train.inputIds));
    // 3 examples of 19 tokens a row, then 7 pad.
    expect(task.train.rowCount).toBe(100);
    expect(task.decode(task.train.rowInputIds(0))).toMatch(/^(\^(\d{8})>\2\$){3}_{7}$/);
    const problems = (rows: typeof task.train): Set<string> =>
      new Set(task.decode(rows.inputIds).match(/\^\d+>/g) ?? []);
    const train = problems(task.train);
    const heldOut = problems(task.heldOut);
    expect(heldOut.size).toBe(60);
    expect([...heldOut].filter((p) => train.has(p))).toEqual([]);
    expect(Math.max(...task.train.inputIds)).toBeLessThan(task.vocabSize);
    expect(task.description).toContain('copy 8 symbols of 10');
  });

  it('refuses options it cannot honour', () => {
    expect(() => demoTask({ length: 30, seqLen: 32 })).toThrow(/seqLen 32 is not an integer in \[63/);
    expect(() => demoTask({ symbols: 40 })).toThrow(/symbols 40/);
    expect(() => demoTask({ symbols: 2, length: 4 })).toThrow(/too few/);
  });

  for (const kind of ['copy', 'reverse', 'sort'] as const)
    it(`${kind}: the metric is 1 for a perfect model, 0 for a wrong one`, () => {
      const task = demoTask({ kind, trainExamples: 30, heldOutExamples: 30, seed: 1 });
      const vocab = task.vocabSize + 3; // a model vocabulary larger than the task's
      const right = task.accuracy(vocab);
      const wrong = task.accuracy(vocab);
      for (const batch of evalBatches(task.heldOut, 4)) {
        right.add(logitsPredicting(batch, vocab, perfect(batch)), batch);
        // Off by one symbol everywhere.
        wrong.add(
          logitsPredicting(batch, vocab, (b, t) => (perfect(batch)(b, t) + 1) % vocab),
          batch,
        );
      }
      expect(right.result()).toEqual({
        tokens: 30 * 8,
        correctTokens: 240,
        answers: 30,
        correctAnswers: 30,
        tokenAccuracy: 1,
        exactMatch: 1,
      });
      expect(wrong.result()).toMatchObject({
        tokens: 240,
        correctTokens: 0,
        correctAnswers: 0,
        exactMatch: 0,
      });
    });

  it('scores logits at t against the label at t + 1, and random guessing near chance', () => {
    const task = demoTask({ trainExamples: 30, heldOutExamples: 300, seed: 2 });
    const unshifted = task.accuracy();
    const guessing = task.accuracy();
    const rng = new Rng(5);
    for (const batch of evalBatches(task.heldOut, 8)) {
      // Predicting the label at t itself (forgetting the shift) is the copy of the previous answer token.
      unshifted.add(
        logitsPredicting(batch, task.vocabSize, (b, t) => Math.max(0, batch.labels[b * batch.seqLen + t]!)),
        batch,
      );
      guessing.add(
        logitsPredicting(batch, task.vocabSize, () => DEMO_TOKENS.firstSymbol + rng.below(10)),
        batch,
      );
    }
    expect(unshifted.result().exactMatch).toBe(0);
    expect(guessing.result().tokenAccuracy).toBeGreaterThan(0.07);
    expect(guessing.result().tokenAccuracy).toBeLessThan(0.13);
    expect(guessing.result().exactMatch).toBe(0);
  });
});

describe('AnswerAccuracy', () => {
  it('counts an answer right only when all its tokens are, and checks the logits shape', () => {
    // One row: [x, a1, a2, -, b1], answers (a1 a2) and (b1).
    const batch = { batch: 1, seqLen: 5, labels: [IGNORE_INDEX, 1, 2, IGNORE_INDEX, 3] };
    const vocab = 4;
    const logits = new Float32Array(5 * vocab);
    const predict = [1, 0, 0, 3, 0]; // position t predicts the label at t + 1: a1 right, a2 wrong, b1 right
    predict.forEach((p, t) => (logits[t * vocab + p] = 1));
    const accuracy = new AnswerAccuracy({ vocabSize: vocab });
    accuracy.add(logits, batch);
    expect(accuracy.result()).toEqual({
      tokens: 3,
      correctTokens: 2,
      answers: 2,
      correctAnswers: 1,
      tokenAccuracy: 2 / 3,
      exactMatch: 0.5,
    });
    expect(() => accuracy.add(new Float32Array(7), batch)).toThrow(/expected batch 1 x seq 5 x vocab 4/);
    expect(new AnswerAccuracy({ vocabSize: 2 }).result().tokenAccuracy).toBe(0);
  });
});
