// Packing invariants on random examples: rows of exactly seqLen, ids and labels moved together, every
// loss token kept (except what truncation reports), greedy never splitting an example that fits.
import { describe, expect, it } from 'vitest';
import {
  IGNORE_INDEX,
  TokenizedExamples,
  packExamples,
  type OverlongPolicy,
  type PackedRows,
  type PackingLayout,
  type TokenizedExample,
} from '../../src/data/index.js';
import { Rng } from '../../src/util/rng.js';

const PAD = -7;

/**
 * Example i has ids i*1000 + t (so a token says which example and position it is) and a masked
 * "prompt" of random length before its labelled "response".
 */
function randomExamples(count: number, maxLength: number, seed: number): TokenizedExample[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, i) => {
    const length = 1 + rng.below(maxLength);
    const prompt = rng.below(length);
    const inputIds = Array.from({ length }, (_, t) => i * 1000 + t);
    return { inputIds, labels: inputIds.map((id, t) => (t < prompt ? IGNORE_INDEX : id)) };
  });
}

function labelled(labels: ArrayLike<number>): number {
  return Array.from(labels).filter((l) => l !== IGNORE_INDEX).length;
}

/** The non-padding tokens of all rows, in order, as [id, label] pairs. */
function stream(rows: PackedRows): [number, number][] {
  const out: [number, number][] = [];
  rows.inputIds.forEach((id, i) => {
    if (id !== PAD) out.push([id, rows.labels[i]!]);
  });
  return out;
}

const layouts: PackingLayout[] = ['greedy', 'concat'];
const policies: OverlongPolicy[] = ['truncate', 'split'];

describe('packExamples', () => {
  for (const layout of layouts)
    for (const overlong of policies)
      it(`${layout}, overlong ${overlong}: exact rows, aligned labels, every loss token accounted for`, () => {
        const seqLen = 16;
        const examples = randomExamples(200, 40, 3);
        const rows = packExamples(TokenizedExamples.fromExamples(examples), {
          seqLen,
          padTokenId: PAD,
          layout,
          overlong,
        });
        expect(rows.inputIds.length).toBe(rows.rowCount * seqLen);
        expect(rows.labels.length).toBe(rows.rowCount * seqLen);
        // A label is either "no loss" or the token at its own position (unshifted), never a neighbour's;
        // padding is never learned.
        const misaligned = Array.from(rows.labels).findIndex(
          (label, i) =>
            (label !== IGNORE_INDEX && label !== rows.inputIds[i]) ||
            (rows.inputIds[i] === PAD && label !== IGNORE_INDEX),
        );
        expect(misaligned).toBe(-1);
        // The tokens kept are the examples' own, in order: whole ones, or first seqLen when truncated.
        const kept = examples.flatMap((e) => {
          const n = overlong === 'truncate' ? Math.min(e.inputIds.length, seqLen) : e.inputIds.length;
          return Array.from(e.inputIds)
            .slice(0, n)
            .map((id, t) => [id, e.labels[t]!] as [number, number]);
        });
        expect(stream(rows)).toEqual(kept);
        const s = rows.stats;
        const allLabels = examples.reduce((n, e) => n + labelled(e.labels), 0);
        expect(labelled(rows.labels)).toBe(s.labelTokens);
        expect(s.labelTokens + s.truncatedLabelTokens).toBe(allLabels);
        expect(s.tokens + s.padTokens).toBe(rows.inputIds.length);
        expect(s.rows).toBe(rows.rowCount);
        expect(s.examples).toBe(200);
        const overlongCount = examples.filter((e) => e.inputIds.length > seqLen).length;
        expect(overlongCount).toBeGreaterThan(0);
        expect(s.truncatedExamples).toBe(overlong === 'truncate' ? overlongCount : 0);
        if (overlong === 'split') expect(s.truncatedLabelTokens).toBe(0);
      });

  it('greedy keeps every example that fits inside one row, starting rows at example starts', () => {
    const seqLen = 16;
    const examples = randomExamples(300, seqLen, 5);
    const rows = packExamples(TokenizedExamples.fromExamples(examples), { seqLen, padTokenId: PAD });
    for (let r = 0; r < rows.rowCount; r++) {
      const ids = Array.from(rows.rowInputIds(r)).filter((id) => id !== PAD);
      // Every example in the row starts at its position 0 and is whole.
      expect(ids[0]! % 1000).toBe(0);
      const byExample = new Map<number, number[]>();
      for (const id of ids)
        byExample.set(Math.floor(id / 1000), [...(byExample.get(Math.floor(id / 1000)) ?? []), id % 1000]);
      for (const [i, positions] of byExample)
        expect(positions).toEqual(Array.from(examples[i]!.inputIds, (_, t) => t));
      // Padding only at the end of a row.
      const row = Array.from(rows.rowInputIds(r));
      expect(row.slice(ids.length).every((id) => id === PAD)).toBe(true);
    }
    // Rows are padded only when the next example does not fit.
    expect(rows.stats.padTokens).toBeLessThan(rows.rowCount * seqLen * 0.5);
  });

  it('concat fills every row but the last completely', () => {
    const rows = packExamples(TokenizedExamples.fromExamples(randomExamples(100, 30, 9)), {
      seqLen: 32,
      padTokenId: PAD,
      layout: 'concat',
      overlong: 'split',
    });
    const padded = Array.from(rows.inputIds).findIndex((id) => id === PAD);
    expect(padded).toBeGreaterThanOrEqual((rows.rowCount - 1) * 32);
    expect(rows.stats.padTokens).toBeLessThan(32);
  });

  it('truncates an overlong example to its first seqLen tokens and reports what was cut', () => {
    const example = { inputIds: [1, 2, 3, 4, 5, 6], labels: [IGNORE_INDEX, IGNORE_INDEX, 3, 4, 5, 6] };
    const rows = packExamples(TokenizedExamples.fromExamples([example]), { seqLen: 4, padTokenId: 0 });
    expect(Array.from(rows.inputIds)).toEqual([1, 2, 3, 4]);
    expect(Array.from(rows.labels)).toEqual([IGNORE_INDEX, IGNORE_INDEX, 3, 4]);
    expect(rows.stats).toMatchObject({
      truncatedExamples: 1,
      truncatedTokens: 2,
      truncatedLabelTokens: 2,
      labelTokens: 2,
    });
  });

  it('handles no examples and rejects a bad seqLen', () => {
    const rows = packExamples(TokenizedExamples.fromExamples([]), { seqLen: 8, padTokenId: 0 });
    expect(rows.rowCount).toBe(0);
    expect(() => packExamples(TokenizedExamples.fromExamples([]), { seqLen: 0, padTokenId: 0 })).toThrow(
      /seqLen 0/,
    );
  });
});

describe('TokenizedExamples', () => {
  it('stores examples flat and selects by index', () => {
    const examples = TokenizedExamples.fromExamples([
      { inputIds: [1, 2], labels: [IGNORE_INDEX, 2] },
      { inputIds: [3], labels: [3] },
      { inputIds: [4, 5, 6], labels: [4, 5, 6] },
    ]);
    expect([examples.count, examples.tokenCount, examples.lengthOf(2)]).toEqual([3, 6, 3]);
    const picked = examples.select([2, 0]);
    expect(Array.from(picked.inputIds)).toEqual([4, 5, 6, 1, 2]);
    expect(Array.from(picked.labelsOf(1))).toEqual([IGNORE_INDEX, 2]);
    expect(() => examples.select([3])).toThrow(/out of range/);
    expect(() => TokenizedExamples.fromExamples([{ inputIds: [1], labels: [] }])).toThrow(
      /1 input ids but 0 labels/,
    );
  });
});
