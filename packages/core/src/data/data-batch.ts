// A batch as the model takes it: [batch, seqLen] input ids and labels, row-major. Its fields are a
// superset of the model's TokenBatch (batch, seqLen, inputIds, labels), so it can be passed as one.
import type { PackedRows } from './packed-rows.js';
import { IGNORE_INDEX } from './tokenized-examples.js';

export interface DataBatch {
  /** Rows in the batch. */
  readonly batch: number;
  readonly seqLen: number;
  readonly inputIds: Int32Array;
  /** Not shifted (HF semantics: the model compares logits at t with labels[t + 1]). */
  readonly labels: Int32Array;
  /** The packed row behind each batch row; -1 marks a filler row (all padding, no loss). */
  readonly rows: readonly number[];
  /** Labels that are not IGNORE_INDEX (the tokens the loss averages over). */
  readonly labelTokens: number;
}

/** Copies the given rows (-1: a filler row of padding) into one batch. */
export function gatherBatch(data: PackedRows, rows: readonly number[]): DataBatch {
  const { seqLen } = data;
  const inputIds = new Int32Array(rows.length * seqLen);
  const labels = new Int32Array(rows.length * seqLen);
  let labelTokens = 0;
  rows.forEach((row, b) => {
    if (row < 0) {
      inputIds.fill(data.padTokenId, b * seqLen, (b + 1) * seqLen);
      labels.fill(IGNORE_INDEX, b * seqLen, (b + 1) * seqLen);
      return;
    }
    inputIds.set(data.rowInputIds(row), b * seqLen);
    const rowLabels = data.rowLabels(row);
    labels.set(rowLabels, b * seqLen);
    for (let t = 0; t < seqLen; t++) if (rowLabels[t] !== IGNORE_INDEX) labelTokens++;
  });
  return { batch: rows.length, seqLen, inputIds, labels, rows, labelTokens };
}
