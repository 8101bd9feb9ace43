// The tokenizer wrapper on a hand-made LLaMA-style BPE tokenizer.json (sentencepiece-like "▁" for
// spaces, a BOS template), with the BOS/EOS rules of tokenizer_config.json.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HfTokenizer } from '../../src/hf/index.js';
import { tempDir } from './helpers.js';

const pieces = [
  '<unk>',
  '<s>',
  '</s>',
  '▁',
  'h',
  'e',
  'l',
  'o',
  'w',
  'r',
  'd',
  '▁h',
  'll',
  '▁he',
  '▁hell',
  '▁hello',
  '▁w',
  'or',
  '▁wor',
  '▁worl',
  '▁world',
];
const special = (id: number, content: string): object => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});

/** The shape of LLaMA-2's tokenizer.json, with a vocabulary of 21 pieces. */
const LLAMA_STYLE_TOKENIZER = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
  normalizer: {
    type: 'Sequence',
    normalizers: [
      { type: 'Prepend', prepend: '▁' },
      { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    ],
  },
  pre_tokenizer: null,
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: '<s>', type_id: 0 } },
      { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '<s>', type_id: 1 } },
      { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  },
  decoder: {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ],
  },
  model: {
    type: 'BPE',
    dropout: null,
    unk_token: '<unk>',
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: false,
    vocab: Object.fromEntries(pieces.map((p, i) => [p, i])),
    merges: ['▁ h', 'l l', '▁h e', '▁he ll', '▁hell o', '▁ w', 'o r', '▁w or', '▁wor l', '▁worl d'],
  },
};

const LLAMA_CONFIG = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
};

describe('HfTokenizer', () => {
  it('encodes with the BPE merges, without special tokens unless asked', () => {
    const t = new HfTokenizer(LLAMA_STYLE_TOKENIZER, LLAMA_CONFIG);
    expect(t.encode('hello world', { addSpecialTokens: false })).toEqual([15, 20]);
    expect(t.encode('hello world', { addSpecialTokens: true })).toEqual([1, 15, 20]);
    expect(t.encode('world hello', { addSpecialTokens: false })).toEqual([20, 15]);
    expect(t.encode('', { addSpecialTokens: false })).toEqual([]);
  });

  it('maps unknown characters to <unk>, fusing runs of them', () => {
    const t = new HfTokenizer(LLAMA_STYLE_TOKENIZER, LLAMA_CONFIG);
    expect(t.encode('hello xyz', { addSpecialTokens: false })).toEqual([15, 3, 0]);
  });

  it('keeps special tokens written in the text', () => {
    const t = new HfTokenizer(LLAMA_STYLE_TOKENIZER, LLAMA_CONFIG);
    expect(t.encode('hello</s>', { addSpecialTokens: false })).toEqual([15, 2]);
  });

  it('decodes back to the text', () => {
    const t = new HfTokenizer(LLAMA_STYLE_TOKENIZER, LLAMA_CONFIG);
    expect(t.decode([1, 15, 20], { skipSpecialTokens: true })).toBe('hello world');
    expect(t.decode([])).toBe('');
  });

  it('lets add_bos_token / add_eos_token decide over the post-processor, as LlamaTokenizerFast does', () => {
    const withEos = new HfTokenizer(LLAMA_STYLE_TOKENIZER, { ...LLAMA_CONFIG, add_eos_token: true });
    expect(withEos.encode('hello', { addSpecialTokens: true })).toEqual([1, 15, 2]);
    expect(withEos.encode('hello', { addSpecialTokens: false })).toEqual([15]);
    const noBos = new HfTokenizer(LLAMA_STYLE_TOKENIZER, { ...LLAMA_CONFIG, add_bos_token: false });
    expect(noBos.encode('hello', { addSpecialTokens: true })).toEqual([15]);
    expect([noBos.bosTokenId, noBos.eosTokenId, noBos.addBosToken, noBos.addEosToken]).toEqual([
      1,
      2,
      false,
      false,
    ]);
  });

  it("uses tokenizer.json's post-processor when tokenizer_config.json says nothing", () => {
    const t = new HfTokenizer(LLAMA_STYLE_TOKENIZER, {});
    expect(t.encode('hello', { addSpecialTokens: true })).toEqual([1, 15]);
    const { post_processor: _, ...bare } = LLAMA_STYLE_TOKENIZER;
    expect(
      new HfTokenizer({ ...bare, post_processor: null }, {}).encode('hello', { addSpecialTokens: true }),
    ).toEqual([15]);
  });

  it('reads special tokens written as AddedToken objects', () => {
    const t = new HfTokenizer(LLAMA_STYLE_TOKENIZER, {
      ...LLAMA_CONFIG,
      eos_token: { content: '</s>', special: true },
    });
    expect(t.eosTokenId).toBe(2);
    expect(t.vocabSize).toBe(21);
  });

  it('explains bad special-token settings and bad files', () => {
    expect(() => new HfTokenizer(LLAMA_STYLE_TOKENIZER, { bos_token: '<bos>' })).toThrow(
      /bos_token "<bos>" is not in the vocabulary/,
    );
    expect(() => new HfTokenizer(LLAMA_STYLE_TOKENIZER, { add_eos_token: true })).toThrow(
      /add_eos_token is true but no eos_token is defined/,
    );
    expect(() => new HfTokenizer({ version: '1.0' }, {})).toThrow(
      /not a tokenizer.json \(no "model" object\)/,
    );
    expect(() => new HfTokenizer({ ...LLAMA_STYLE_TOKENIZER, model: { type: 'Nonsense' } }, {})).toThrow(
      /cannot build the tokenizer/,
    );
  });

  it('loads a directory, merging special_tokens_map.json under tokenizer_config.json', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(LLAMA_STYLE_TOKENIZER));
    writeFileSync(
      join(dir, 'special_tokens_map.json'),
      JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }),
    );
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ add_bos_token: true, add_eos_token: true }),
    );
    const t = await HfTokenizer.load(dir);
    expect(t.encode('hello world', { addSpecialTokens: true })).toEqual([1, 15, 20, 2]);
    await expect(HfTokenizer.load(join(dir, 'none'))).rejects.toThrow(/none\/tokenizer.json: not found/);
  });
});
