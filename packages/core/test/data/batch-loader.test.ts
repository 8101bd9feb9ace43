// The training loader: seeded, covering every row once per epoch, and resumable from a saved state to
// exactly the batches an uninterrupted run sees. Evaluation batches: in order, padded to full shape.
import { describe, expect, it } from 'vitest';
import {
  BatchLoader,
  DataFormatError,
  IGNORE_INDEX,
  TokenizedExamples,
  evalBatches,
  packExamples,
  type BatchLoaderState,
  type PackedRows,
  type DataBatch,
} from '../../src/data/index.js';

/** `rowCount` rows of 4 tokens, row r holding ids 100r..100r+3 and its last two tokens labelled. */
function rowsOf(rowCount: number, seqLen = 4): PackedRows {
  const examples = Array.from({ length: rowCount }, (_, r) => {
    const inputIds = Array.from({ length: seqLen }, (_, t) => 100 * r + t);
    return { inputIds, labels: inputIds.map((id, t) => (t >= seqLen - 2 ? id : IGNORE_INDEX)) };
  });
  return packExamples(TokenizedExamples.fromExamples(examples), { seqLen, padTokenId: 0 });
}

const take = (loader: BatchLoader, n: number): DataBatch[] => Array.from({ length: n }, () => loader.next());
const rowsSeen = (batches: DataBatch[]): number[] => batches.flatMap((b) => [...b.rows]);

describe('BatchLoader', () => {
  it('gives [batch, seqLen] batches whose rows are copies of the packed rows', () => {
    const data = rowsOf(10);
    const batch = new BatchLoader(data, { batchSize: 3, seed: 1 }).next();
    expect([batch.batch, batch.seqLen, batch.inputIds.length, batch.labels.length]).toEqual([3, 4, 12, 12]);
    batch.rows.forEach((row, b) => {
      expect(Array.from(batch.inputIds.subarray(b * 4, b * 4 + 4))).toEqual(
        Array.from(data.rowInputIds(row)),
      );
      expect(Array.from(batch.labels.subarray(b * 4, b * 4 + 4))).toEqual(Array.from(data.rowLabels(row)));
    });
    expect(batch.labelTokens).toBe(6);
  });

  it('is a function of the seed, and sees every row exactly once per epoch even across batch boundaries', () => {
    const data = rowsOf(10);
    const a = rowsSeen(take(new BatchLoader(data, { batchSize: 3, seed: 7 }), 10));
    const b = rowsSeen(take(new BatchLoader(data, { batchSize: 3, seed: 7 }), 10));
    const c = rowsSeen(take(new BatchLoader(data, { batchSize: 3, seed: 8 }), 10));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    for (let epoch = 0; epoch < 3; epoch++)
      expect(a.slice(epoch * 10, epoch * 10 + 10).sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
    // A fresh order each epoch.
    expect(a.slice(0, 10)).not.toEqual(a.slice(10, 20));
  });

  it('keeps the packed order without shuffling', () => {
    const loader = new BatchLoader(rowsOf(5), { batchSize: 2, seed: 1, shuffle: false });
    expect(rowsSeen(take(loader, 5))).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
  });

  it('tracks epochs', () => {
    const loader = new BatchLoader(rowsOf(4), { batchSize: 3, seed: 1 });
    expect([loader.epoch, loader.epochProgress]).toEqual([0, 0]);
    loader.next();
    expect([loader.epoch, loader.epochProgress]).toEqual([0, 0.75]);
    loader.next();
    expect([loader.epoch, loader.epochProgress]).toEqual([1, 1.5]);
  });

  it('resumes from a saved state (through JSON) with exactly the batches of an uninterrupted run', () => {
    const data = rowsOf(13);
    for (const k of [0, 1, 4, 5, 13]) {
      const uninterrupted = new BatchLoader(data, { batchSize: 4, seed: 42 });
      take(uninterrupted, k);
      const saved = JSON.parse(JSON.stringify(uninterrupted.state())) as BatchLoaderState;
      const expected = take(uninterrupted, 9);
      // The seed given here is ignored: the state carries the generator.
      const resumed = new BatchLoader(rowsOf(13), { batchSize: 4, seed: 999 }, saved);
      const got = take(resumed, 9);
      expect(got.map((b) => Array.from(b.inputIds))).toEqual(expected.map((b) => Array.from(b.inputIds)));
      expect(got.map((b) => Array.from(b.labels))).toEqual(expected.map((b) => Array.from(b.labels)));
      expect(resumed.state()).toEqual(uninterrupted.state());
    }
  });

  it('refuses to resume on other data or another batch shape, saying what changed', () => {
    const loader = new BatchLoader(rowsOf(6), { batchSize: 2, seed: 1 });
    loader.next();
    const saved = loader.state();
    expect(() => new BatchLoader(rowsOf(7), { batchSize: 2, seed: 1 }, saved)).toThrow(/6 rows then, 7 now/);
    expect(() => new BatchLoader(rowsOf(6), { batchSize: 3, seed: 1 }, saved)).toThrow(
      /batch size 2 then, 3 now/,
    );
    const other = rowsOf(6);
    other.inputIds[5] = 12345;
    expect(() => new BatchLoader(other, { batchSize: 2, seed: 1 }, saved)).toThrow(DataFormatError);
    expect(() => new BatchLoader(other, { batchSize: 2, seed: 1 }, saved)).toThrow(/different tokens/);
    expect(() => new BatchLoader(rowsOf(6), { batchSize: 2, seed: 1 }, { ...saved, index: 9 })).toThrow(
      /bad position/,
    );
  });

  it('rejects empty data and a bad batch size', () => {
    expect(() => new BatchLoader(rowsOf(0), { batchSize: 2, seed: 1 })).toThrow(/no training rows/);
    expect(() => new BatchLoader(rowsOf(3), { batchSize: 0, seed: 1 })).toThrow(/batch size 0/);
  });
});

describe('evalBatches', () => {
  it('visits every row once in order, filling the last batch with unlabelled padding rows', () => {
    const data = rowsOf(5);
    const batches = [...evalBatches(data, 2)];
    expect(batches.map((b) => b.rows)).toEqual([
      [0, 1],
      [2, 3],
      [4, -1],
    ]);
    const last = batches[2]!;
    expect(Array.from(last.inputIds.subarray(4))).toEqual([0, 0, 0, 0]);
    expect(Array.from(last.labels.subarray(4))).toEqual(Array(4).fill(IGNORE_INDEX));
    expect(last.labelTokens).toBe(2);
  });

  it('can stop after a number of rows (a refit subset)', () => {
    expect([...evalBatches(rowsOf(10), 4, { maxRows: 5 })].map((b) => b.rows)).toEqual([
      [0, 1, 2, 3],
      [4, -1, -1, -1],
    ]);
  });
});
