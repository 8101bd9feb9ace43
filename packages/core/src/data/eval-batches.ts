// Evaluation batches: the held-out rows in their packed order, every row once. The last batch is
// filled up with filler rows (padding, no labels) so every batch has the model's fixed shape.
import type { PackedRows } from './packed-rows.js';
import { gatherBatch, type DataBatch } from './data-batch.js';

export interface EvalBatchOptions {
  /** Only the first `maxRows` rows (e.g. a small subset for projector refits). */
  readonly maxRows?: number;
}

export function* evalBatches(
  data: PackedRows,
  batchSize: number,
  options: EvalBatchOptions = {},
): Generator<DataBatch> {
  if (!Number.isInteger(batchSize) || batchSize <= 0)
    throw new RangeError(`batch size ${batchSize} is not a positive integer`);
  const rowCount = Math.min(data.rowCount, options.maxRows ?? Infinity);
  for (let start = 0; start < rowCount; start += batchSize) {
    const rows = Array.from({ length: batchSize }, (_, b) => (start + b < rowCount ? start + b : -1));
    yield gatherBatch(data, rows);
  }
}
