import { describe, expect, it } from 'vitest';
import { GREEDY, Rng, chooseToken, samplingProbabilities } from '../../src/index.js';

/** softmax(logits / t) restricted to `kept` (float64, written out independently). */
function restricted(logits: number[], t: number, kept: number[]): number[] {
  const z = kept.reduce((s, i) => s + Math.exp(logits[i]! / t), 0);
  return logits.map((x, i) => (kept.includes(i) ? Math.exp(x / t) / z : 0));
}

function expectProbs(got: Float64Array, want: number[]): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    expect(Math.abs(got[i]! - want[i]!), `token ${i}`).toBeLessThan(1e-14);
}

describe('sampling', () => {
  const logits = [0.3, 2.1, -1.7, 2.1, 0.9, 1.4, -0.2];

  it('greedy takes the first of equal maxima, like torch.argmax', () => {
    expect(chooseToken(logits, GREEDY, () => 0.5)).toBe(1);
  });

  it('temperature alone keeps every token', () => {
    expectProbs(
      samplingProbabilities(logits, { temperature: 0.7, topK: 0, topP: 1 }),
      restricted(logits, 0.7, [0, 1, 2, 3, 4, 5, 6]),
    );
  });

  it('top-k keeps the k largest, and ties with the k-th', () => {
    expectProbs(
      samplingProbabilities(logits, { temperature: 1, topK: 3, topP: 1 }),
      restricted(logits, 1, [1, 3, 5]),
    );
    expectProbs(
      samplingProbabilities(logits, { temperature: 1, topK: 1, topP: 1 }),
      restricted(logits, 1, [1, 3]),
    );
  });

  it('top-p keeps the most likely tokens until their mass exceeds top_p (at least one)', () => {
    const p = restricted(logits, 1, [0, 1, 2, 3, 4, 5, 6]);
    // descending: 1 and 3 (equal), 5, 4, 0, 6, 2
    const top2 = p[1]! + p[3]!;
    expectProbs(
      samplingProbabilities(logits, { temperature: 1, topK: 0, topP: top2 - 1e-9 }),
      restricted(logits, 1, [1, 3]),
    );
    expectProbs(
      samplingProbabilities(logits, { temperature: 1, topK: 0, topP: top2 + 1e-9 }),
      restricted(logits, 1, [1, 3, 5]),
    );
    expect(
      samplingProbabilities(logits, { temperature: 1, topK: 0, topP: 1e-6 }).filter((x) => x > 0).length,
    ).toBe(1);
    // top-k first, then top-p over what is left (renormalised)
    const k3 = restricted(logits, 1, [1, 3, 5]);
    expectProbs(samplingProbabilities(logits, { temperature: 1, topK: 3, topP: k3[1]! + k3[3]! + 1e-9 }), k3);
  });

  it('draws tokens with the filtered probabilities', () => {
    const o = { temperature: 1.3, topK: 5, topP: 0.95 };
    const want = samplingProbabilities(logits, o);
    const rng = new Rng(5);
    const counts = new Array<number>(logits.length).fill(0);
    const n = 40000;
    for (let i = 0; i < n; i++) counts[chooseToken(logits, o, () => rng.next())]!++;
    for (let i = 0; i < logits.length; i++) {
      const sd = Math.sqrt(n * want[i]! * (1 - want[i]!) || 1);
      expect(Math.abs(counts[i]! - n * want[i]!), `token ${i}`).toBeLessThan(5 * sd);
      if (want[i] === 0) expect(counts[i]).toBe(0);
    }
    // the inverse CDF: u just below the first token's mass picks it
    const first = want.findIndex((x) => x > 0);
    expect(chooseToken(logits, o, () => want[first]! - 1e-12)).toBe(first);
  });
});
