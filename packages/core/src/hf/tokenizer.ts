// tokenizer.json through @huggingface/tokenizers (a faithful JS port of HF tokenizers; no BPE of our
// own), plus the BOS/EOS rules of transformers: when tokenizer_config.json sets add_bos_token or
// add_eos_token (LLaMA does), those decide which special tokens surround the text, as
// LlamaTokenizerFast does; otherwise tokenizer.json's own post-processor decides (GPT-2 adds none).
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { HfFormatError } from './errors.js';
import { isPlainObject } from './safetensors-header.js';

/**
 * The part of @huggingface/tokenizers we use. Its bundled typings import their own files without
 * extensions, which TypeScript's NodeNext resolution cannot follow, so the class arrives untyped;
 * this states the API (checked against its README and typings, version 0.2).
 */
interface TokenizersJs {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[]; tokens: string[] };
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
  token_to_id(token: string): number | undefined;
  get_vocab(withAddedTokens: boolean): Map<string, number>;
}
const TokenizersJsClass = Tokenizer as unknown as new (tokenizerJson: object, config: object) => TokenizersJs;

export interface EncodeOptions {
  /** Add the BOS/EOS (or other template) tokens the model was trained with. */
  readonly addSpecialTokens: boolean;
}

export class HfTokenizer {
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  /** From tokenizer_config.json; undefined when the post-processor of tokenizer.json decides. */
  readonly addBosToken?: boolean;
  readonly addEosToken?: boolean;
  private readonly tokenizer: TokenizersJs;

  /**
   * `tokenizerJson` is tokenizer.json; `tokenizerConfig` is tokenizer_config.json (merged over
   * special_tokens_map.json when loading a directory). `source` names the files in errors.
   */
  constructor(
    tokenizerJson: unknown,
    tokenizerConfig: unknown = {},
    readonly source = 'tokenizer.json',
  ) {
    if (!isPlainObject(tokenizerJson) || !isPlainObject(tokenizerJson.model))
      throw new HfFormatError(source, 'not a tokenizer.json (no "model" object)');
    if (!isPlainObject(tokenizerConfig))
      throw new HfFormatError(source, 'tokenizer_config.json is not a JSON object');
    try {
      this.tokenizer = new TokenizersJsClass(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new HfFormatError(source, `cannot build the tokenizer: ${(e as Error).message}`);
    }
    const addBos = tokenizerConfig.add_bos_token;
    const addEos = tokenizerConfig.add_eos_token;
    if (typeof addBos === 'boolean') this.addBosToken = addBos;
    if (typeof addEos === 'boolean') this.addEosToken = addEos;
    this.bosToken = tokenContent(tokenizerConfig.bos_token);
    this.eosToken = tokenContent(tokenizerConfig.eos_token);
    if (this.bosToken !== undefined) this.bosTokenId = this.requireId(this.bosToken, 'bos_token');
    if (this.eosToken !== undefined) this.eosTokenId = this.requireId(this.eosToken, 'eos_token');
    if (this.addBosToken && this.bosTokenId === undefined)
      throw new HfFormatError(source, 'add_bos_token is true but no bos_token is defined');
    if (this.addEosToken && this.eosTokenId === undefined)
      throw new HfFormatError(source, 'add_eos_token is true but no eos_token is defined');
  }

  /** Reads `<dir>/tokenizer.json` and, where present, tokenizer_config.json and special_tokens_map.json. */
  static async load(dir: string): Promise<HfTokenizer> {
    const tokenizerPath = join(dir, 'tokenizer.json');
    if (!existsSync(tokenizerPath))
      throw new HfFormatError(tokenizerPath, 'not found (the tokenizer must be in tokenizer.json)');
    const tokenizerJson = await readJson(tokenizerPath);
    const specialTokens = await readOptionalJson(join(dir, 'special_tokens_map.json'));
    const tokenizerConfig = await readOptionalJson(join(dir, 'tokenizer_config.json'));
    return new HfTokenizer(tokenizerJson, { ...specialTokens, ...tokenizerConfig }, tokenizerPath);
  }

  encode(text: string, options: EncodeOptions): number[] {
    const overridden = this.addBosToken !== undefined || this.addEosToken !== undefined;
    const encoding = this.tokenizer.encode(text, {
      add_special_tokens: options.addSpecialTokens && !overridden,
    });
    encoding.ids.forEach((id, i) => {
      if (!Number.isInteger(id))
        throw new HfFormatError(
          this.source,
          `the text piece ${JSON.stringify(encoding.tokens[i])} has no token id and the vocabulary has no unknown token`,
        );
    });
    if (!overridden || !options.addSpecialTokens) return encoding.ids;
    return [
      ...(this.addBosToken ? [this.bosTokenId!] : []),
      ...encoding.ids,
      ...(this.addEosToken ? [this.eosTokenId!] : []),
    ];
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  /** Number of ids in use, added tokens included (may be smaller than the model's vocab_size). */
  get vocabSize(): number {
    return this.tokenizer.get_vocab(true).size;
  }

  private requireId(token: string, field: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined)
      throw new HfFormatError(this.source, `${field} ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  }
}

/** Special tokens are written either as a string or as an AddedToken object `{content, ...}`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isPlainObject(value) && typeof value.content === 'string') return value.content;
  return undefined;
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new HfFormatError(path, `cannot read as JSON: ${(e as Error).message}`);
  }
}

async function readOptionalJson(path: string): Promise<Record<string, unknown>> {
  if (!existsSync(path)) return {};
  const json = await readJson(path);
  if (!isPlainObject(json)) throw new HfFormatError(path, 'not a JSON object');
  return json;
}
