// Shared by the data tests: data files in a temporary directory and a tiny hand-made tokenizer.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HfTokenizer } from '../../src/hf/index.js';
import { tempDir } from '../hf/helpers.js';

/** Writes `content` to `name` in a fresh temporary directory (removed after the test); returns the path. */
export function dataFile(name: string, content: string): string {
  const path = join(tempDir(), name);
  writeFileSync(path, content);
  return path;
}

/** JSONL text of the given values, one per line. */
export function jsonl(...values: unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join('\n') + '\n';
}

const SPECIALS = ['<unk>', '<s>', '</s>'];

/**
 * A LLaMA-shaped tokenizer.json (sentencepiece-style "▁" for spaces, a BOS template) whose pieces are
 * single characters, plus one merge "a b" -> "ab" so a prompt/response boundary can fall inside a
 * token. Texts of printable ASCII encode to one id a character (after a leading "▁"), which makes
 * expected ids easy to write: see `charIds`.
 */
export const CHAR_TOKENIZER_JSON = (() => {
  const pieces = [...SPECIALS, '▁', '\n'];
  for (let c = 33; c < 127; c++) pieces.push(String.fromCharCode(c));
  pieces.push('ab');
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
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
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
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
      merges: ['a b'],
    },
  };
})();

export const BOS = 1;
export const EOS = 2;

/** LLaMA-style: BOS before every text (add_bos_token), EOS defined but not added. */
export function llamaStyleTokenizer(config: Record<string, unknown> = {}): HfTokenizer {
  return new HfTokenizer(CHAR_TOKENIZER_JSON, {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    ...config,
  });
}

/** GPT-2-style: no post-processor, so no special tokens are added; EOS is defined. */
export function gpt2StyleTokenizer(): HfTokenizer {
  return new HfTokenizer({ ...CHAR_TOKENIZER_JSON, post_processor: null }, { eos_token: '</s>' });
}

/** The ids the char tokenizer gives `text` (without special tokens): "▁" first, then one per character. */
export function charIds(text: string): number[] {
  const vocab = CHAR_TOKENIZER_JSON.model.vocab as Record<string, number>;
  return ['▁', ...text.replaceAll(' ', '▁')].map((c) => {
    const id = vocab[c];
    if (id === undefined) throw new Error(`no piece for ${JSON.stringify(c)}`);
    return id;
  });
}
