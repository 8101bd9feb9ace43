// `lsp-offload tokenize`: the token ids of a text as a JSON array, to compare our tokenizer with
// another implementation's (e.g. transformers' tokenizer(text)["input_ids"]).
import { HfTokenizer } from '@lsp-offload/core';

export interface TokenizeOptions {
  /** A directory with tokenizer.json (and optionally tokenizer_config.json, special_tokens_map.json). */
  model: string;
  text: string;
  /** Add the model's special tokens (BOS/EOS); off by default so the ids are the text's alone. */
  special?: boolean;
}

export async function tokenizeCommand(opts: TokenizeOptions): Promise<string> {
  const tokenizer = await HfTokenizer.load(opts.model);
  return JSON.stringify(tokenizer.encode(opts.text, { addSpecialTokens: opts.special ?? false }));
}
