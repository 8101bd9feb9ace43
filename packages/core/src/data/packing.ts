// Packs tokenized examples into rows of exactly seqLen tokens. Ids and labels are written together,
// token by token, so the loss mask stays aligned with the ids whatever the layout.
import { GrowableInt32 } from './int32-buffer.js';
import { PackedRows } from './packed-rows.js';
import { IGNORE_INDEX, type TokenizedExamples } from './tokenized-examples.js';

/**
 * 'greedy': an example that fits in a row is never split; it starts a new row when it does not fit in
 * what is left of the current one (which is then padded). Each example keeps its whole context.
 * 'concat': examples follow each other across row boundaries, no padding except after the last;
 * no token is wasted, but an example's start may sit in the previous row.
 */
export type PackingLayout = 'greedy' | 'concat';

/** Examples longer than seqLen: keep their first seqLen tokens, or continue them over the next rows. */
export type OverlongPolicy = 'truncate' | 'split';

export interface PackingOptions {
  readonly seqLen: number;
  readonly padTokenId: number;
  /** Default 'greedy'. */
  readonly layout?: PackingLayout;
  /** Default 'truncate' (counted in the stats). */
  readonly overlong?: OverlongPolicy;
}

export function packExamples(examples: TokenizedExamples, options: PackingOptions): PackedRows {
  const { seqLen, padTokenId } = options;
  const layout = options.layout ?? 'greedy';
  const overlong = options.overlong ?? 'truncate';
  if (!Number.isInteger(seqLen) || seqLen <= 0)
    throw new RangeError(`seqLen ${seqLen} is not a positive integer`);
  const inputIds = new GrowableInt32(Math.min(examples.tokenCount + seqLen, 1 << 24));
  const labels = new GrowableInt32(Math.min(examples.tokenCount + seqLen, 1 << 24));
  let padTokens = 0;
  let labelTokens = 0;
  let truncatedExamples = 0;
  let truncatedTokens = 0;
  let truncatedLabelTokens = 0;
  const padRow = (): void => {
    const used = inputIds.length % seqLen;
    if (used === 0) return;
    inputIds.fill(padTokenId, seqLen - used);
    labels.fill(IGNORE_INDEX, seqLen - used);
    padTokens += seqLen - used;
  };

  for (let i = 0; i < examples.count; i++) {
    let ids = examples.inputIdsOf(i);
    let lab = examples.labelsOf(i);
    if (ids.length > seqLen && overlong === 'truncate') {
      truncatedExamples++;
      truncatedTokens += ids.length - seqLen;
      truncatedLabelTokens += countLabelled(lab.subarray(seqLen));
      ids = ids.subarray(0, seqLen);
      lab = lab.subarray(0, seqLen);
    }
    const used = inputIds.length % seqLen;
    if (layout === 'greedy' && used > 0 && used + ids.length > seqLen) padRow();
    inputIds.append(ids);
    labels.append(lab);
    labelTokens += countLabelled(lab);
  }
  padRow();

  const tokens = inputIds.length - padTokens;
  return new PackedRows(seqLen, inputIds.toInt32Array(), labels.toInt32Array(), padTokenId, {
    examples: examples.count,
    rows: inputIds.length / seqLen,
    tokens,
    padTokens,
    labelTokens,
    truncatedExamples,
    truncatedTokens,
    truncatedLabelTokens,
  });
}

function countLabelled(labels: Int32Array): number {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
}
