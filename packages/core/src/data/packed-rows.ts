// Rows of exactly seqLen tokens, the unit the loader batches: input ids and their (unshifted) labels,
// row-major, with padding labelled IGNORE_INDEX.

/** What packing did, for the run's report. */
export interface PackingStats {
  readonly examples: number;
  readonly rows: number;
  /** Tokens placed in rows, padding excluded. */
  readonly tokens: number;
  readonly padTokens: number;
  /** Tokens in rows whose label is not IGNORE_INDEX (the tokens the loss sees). */
  readonly labelTokens: number;
  /** Examples longer than seqLen that lost their tail (overlong: 'truncate'). */
  readonly truncatedExamples: number;
  readonly truncatedTokens: number;
  readonly truncatedLabelTokens: number;
}

export class PackedRows {
  private hash?: string;

  constructor(
    readonly seqLen: number,
    /** [rowCount * seqLen], row-major. */
    readonly inputIds: Int32Array,
    /** [rowCount * seqLen], labels[t] is the target at position t (the model shifts them). */
    readonly labels: Int32Array,
    /** The id that fills rows after their last example. */
    readonly padTokenId: number,
    readonly stats: PackingStats,
  ) {
    if (!Number.isInteger(seqLen) || seqLen <= 0)
      throw new RangeError(`seqLen ${seqLen} is not a positive integer`);
    if (inputIds.length !== labels.length || inputIds.length % seqLen !== 0)
      throw new RangeError(
        `input ids (${inputIds.length}) and labels (${labels.length}) are not rows of ${seqLen}`,
      );
  }

  get rowCount(): number {
    return this.inputIds.length / this.seqLen;
  }

  rowInputIds(row: number): Int32Array {
    return this.inputIds.subarray(row * this.seqLen, (row + 1) * this.seqLen);
  }

  rowLabels(row: number): Int32Array {
    return this.labels.subarray(row * this.seqLen, (row + 1) * this.seqLen);
  }

  /**
   * FNV-1a over the shape, ids and labels: a loader state remembers it, so resuming on data that
   * packs differently (another file, tokenizer or seqLen) is refused instead of silently diverging.
   */
  fingerprint(): string {
    if (this.hash === undefined) {
      let h = 0x811c9dc5;
      const mix = (v: number): void => {
        h = Math.imul(h ^ (v & 0xffff), 0x01000193);
        h = Math.imul(h ^ (v >>> 16), 0x01000193);
      };
      mix(this.seqLen);
      for (let i = 0; i < this.inputIds.length; i++) mix(this.inputIds[i]!);
      for (let i = 0; i < this.labels.length; i++) mix(this.labels[i]!);
      this.hash = (h >>> 0).toString(16).padStart(8, '0');
    }
    return this.hash;
  }
}
