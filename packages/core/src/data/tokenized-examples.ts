// Tokenized examples stored flat (all ids in one Int32Array, all labels in another, plus offsets), so
// millions of examples cost 8 bytes a token rather than two small arrays each.
import { GrowableInt32 } from './int32-buffer.js';

/** The label of a token that carries no loss (prompt, BOS, padding); PyTorch's ignore_index. */
export const IGNORE_INDEX = -100;

export interface TokenizedExample {
  readonly inputIds: ArrayLike<number>;
  /** Same length as inputIds, not shifted: labels[t] is the target for inputIds[t] (HF semantics). */
  readonly labels: ArrayLike<number>;
}

export class TokenizedExamples {
  /** `offsets[i]..offsets[i + 1]` are example i's tokens; offsets has count + 1 entries. */
  constructor(
    readonly inputIds: Int32Array,
    readonly labels: Int32Array,
    readonly offsets: Float64Array,
  ) {
    if (inputIds.length !== labels.length)
      throw new RangeError(`${inputIds.length} input ids but ${labels.length} labels`);
    if (offsets.length === 0 || offsets[0] !== 0 || offsets.at(-1) !== inputIds.length)
      throw new RangeError('offsets must start at 0 and end at the token count');
  }

  static fromExamples(examples: Iterable<TokenizedExample>): TokenizedExamples {
    const builder = new TokenizedExamplesBuilder();
    for (const example of examples) builder.add(example);
    return builder.build();
  }

  get count(): number {
    return this.offsets.length - 1;
  }

  get tokenCount(): number {
    return this.inputIds.length;
  }

  lengthOf(i: number): number {
    return this.offsets[i + 1]! - this.offsets[i]!;
  }

  inputIdsOf(i: number): Int32Array {
    return this.inputIds.subarray(this.offsets[i]!, this.offsets[i + 1]!);
  }

  labelsOf(i: number): Int32Array {
    return this.labels.subarray(this.offsets[i]!, this.offsets[i + 1]!);
  }

  /** The examples at `indices`, in that order, copied into a new store. */
  select(indices: readonly number[]): TokenizedExamples {
    const builder = new TokenizedExamplesBuilder();
    for (const i of indices) {
      if (!Number.isInteger(i) || i < 0 || i >= this.count)
        throw new RangeError(`example ${i} is out of range (${this.count} examples)`);
      builder.add({ inputIds: this.inputIdsOf(i), labels: this.labelsOf(i) });
    }
    return builder.build();
  }
}

export class TokenizedExamplesBuilder {
  private readonly inputIds = new GrowableInt32();
  private readonly labels = new GrowableInt32();
  private readonly offsets: number[] = [0];

  add(example: TokenizedExample): void {
    if (example.inputIds.length !== example.labels.length)
      throw new RangeError(`${example.inputIds.length} input ids but ${example.labels.length} labels`);
    this.inputIds.append(example.inputIds);
    this.labels.append(example.labels);
    this.offsets.push(this.inputIds.length);
  }

  get count(): number {
    return this.offsets.length - 1;
  }

  build(): TokenizedExamples {
    return new TokenizedExamples(
      this.inputIds.toInt32Array(),
      this.labels.toInt32Array(),
      Float64Array.from(this.offsets),
    );
  }
}
