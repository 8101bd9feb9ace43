// Which id ends every training example: --eos-token (a token or an id), else the tokenizer's eos_token,
// else config.json's eos_token_id (as transformers falls back); none of them is a clear error.
import { describe, expect, it } from 'vitest';
import { DataFormatError, eosTokenIdFor } from '../../src/data/index.js';
import { CHAR_TOKENIZER_JSON, EOS, llamaStyleTokenizer } from './helpers.js';
import { HfTokenizer } from '../../src/hf/index.js';

// tokenizer.json alone: no tokenizer_config.json, so no eos_token
const bare = new HfTokenizer(CHAR_TOKENIZER_JSON, {});
const model = (eosTokenIds: number[]) => ({ eosTokenIds, vocabSize: 120 });

describe('eosTokenIdFor', () => {
  it("takes the tokenizer's eos_token, else config.json's eos_token_id", () => {
    expect(bare.eosTokenId).toBeUndefined();
    expect(eosTokenIdFor(llamaStyleTokenizer(), model([7]))).toBe(EOS);
    expect(eosTokenIdFor(bare, model([7, 9]))).toBe(7);
  });

  it('--eos-token names a token or an id, and wins', () => {
    expect(eosTokenIdFor(llamaStyleTokenizer(), model([7]), '<unk>')).toBe(0);
    expect(eosTokenIdFor(bare, model([]), '</s>')).toBe(EOS);
    expect(eosTokenIdFor(bare, model([]), '5')).toBe(5);
    expect(() => eosTokenIdFor(bare, model([]), '<eos>')).toThrow(
      /--eos-token '<eos>' is neither a token of the tokenizer nor a token id/,
    );
    expect(() => eosTokenIdFor(bare, model([]), '120')).toThrow(
      /--eos-token 120 is outside the model's vocabulary \[0, 120\)/,
    );
  });

  it('with none of them, says what to give', () => {
    const error = (() => {
      try {
        eosTokenIdFor(bare, model([]));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(DataFormatError);
    expect((error as Error).message).toMatch(
      /no end-of-sequence token: the tokenizer has no eos_token \(tokenizer_config\.json\) and config\.json no eos_token_id; give --eos-token <token or id>/,
    );
  });
});
