// Turns records into token ids and labels. The loss covers the response (prompt/response records) or
// the whole text (text records) and the EOS appended to every example, so the model learns where an
// answer ends; BOS and the prompt are labelled IGNORE_INDEX.
import { DataFormatError } from './errors.js';
import type { DataRecord } from './records.js';
import { IGNORE_INDEX, type TokenizedExample } from './tokenized-examples.js';

/** What the encoder needs of a tokenizer; HfTokenizer has it. */
export interface ExampleTokenizer {
  encode(text: string, options: { addSpecialTokens: boolean }): number[];
  readonly eosTokenId?: number;
}

/** An encoded record: a TokenizedExample as plain arrays. */
export interface EncodedExample extends TokenizedExample {
  readonly inputIds: number[];
  readonly labels: number[];
}

export interface ExampleEncoderOptions {
  /** Overrides the tokenizer's EOS (required when the tokenizer defines none). */
  readonly eosTokenId?: number;
}

export class ExampleEncoder {
  readonly eosTokenId: number;
  /** The special tokens the tokenizer puts before every text: [BOS] for LLaMA, none for GPT-2. */
  readonly leadingTokens: readonly number[];

  constructor(
    private readonly tokenizer: ExampleTokenizer,
    options: ExampleEncoderOptions = {},
  ) {
    const eos = options.eosTokenId ?? tokenizer.eosTokenId;
    if (eos === undefined)
      throw new DataFormatError(
        'the tokenizer defines no eos_token, which ends every training example; set eosTokenId (eosTokenIdFor falls back to config.json, like --eos-token)',
      );
    this.eosTokenId = eos;
    // Encoding the empty text with special tokens shows what the tokenizer adds around a text (its
    // post-processor or add_bos_token/add_eos_token). A trailing EOS is dropped: we append our own after
    // the response, where it belongs, rather than after the prompt.
    const specials = tokenizer.encode('', { addSpecialTokens: true });
    this.leadingTokens = specials.at(-1) === eos ? specials.slice(0, -1) : specials;
  }

  encode(record: DataRecord): EncodedExample {
    if (record.kind === 'text') {
      const ids = this.tokenizer.encode(record.text, { addSpecialTokens: false });
      return this.assemble(ids, 0);
    }
    // As the Stanford Alpaca recipe does: tokenize prompt + response together, so the response is
    // tokenized as natural text is, and mask the tokens that are the prompt's own tokenization. When
    // the tokenizer merges text across the boundary, the merged token is labelled: it holds response text.
    const prompt = this.tokenizer.encode(record.prompt, { addSpecialTokens: false });
    const ids = this.tokenizer.encode(record.prompt + record.response, { addSpecialTokens: false });
    return this.assemble(ids, commonPrefixLength(prompt, ids));
  }

  /** leading specials + ids + EOS, with labels IGNORE_INDEX on the specials and on ids[0..masked). */
  private assemble(ids: readonly number[], masked: number): EncodedExample {
    const inputIds = [...this.leadingTokens, ...ids, this.eosTokenId];
    const labels = inputIds.map((id, t) => (t < this.leadingTokens.length + masked ? IGNORE_INDEX : id));
    return { inputIds, labels };
  }
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}
