// The token that ends every training example. Like transformers: the tokenizer's eos_token
// (tokenizer_config.json) or else config.json's eos_token_id; --eos-token overrides both (a model
// directory with tokenizer.json alone has no eos_token at all).
import { DataFormatError } from './errors.js';

export interface EosTokenizer {
  readonly eosTokenId?: number;
  tokenToId(token: string): number | undefined;
}

export interface EosModelConfig {
  readonly eosTokenIds: readonly number[];
  readonly vocabSize: number;
}

/** `given` is --eos-token: a token id, or a token of the vocabulary. */
export function eosTokenIdFor(tokenizer: EosTokenizer, config: EosModelConfig, given?: string): number {
  if (given !== undefined) {
    // digits are an id (an EOS token is never a number)
    const id = /^\d+$/.test(given) ? Number(given) : tokenizer.tokenToId(given);
    if (id === undefined)
      throw new DataFormatError(`--eos-token '${given}' is neither a token of the tokenizer nor a token id`);
    if (id >= config.vocabSize)
      throw new DataFormatError(
        `--eos-token ${given} is outside the model's vocabulary [0, ${config.vocabSize})`,
      );
    return id;
  }
  const id = tokenizer.eosTokenId ?? config.eosTokenIds[0];
  if (id === undefined)
    throw new DataFormatError(
      'no end-of-sequence token: the tokenizer has no eos_token (tokenizer_config.json) and config.json ' +
        'no eos_token_id; give --eos-token <token or id>',
    );
  return id;
}
