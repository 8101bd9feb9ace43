// `lsp-offload tokenize` on a small hand-made BPE tokenizer.json.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tokenizeCommand } from '../src/index.js';

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lsp-tokenize-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const vocab = ['<unk>', '<s>', '</s>', 'a', 'b', 'c', 'ab', 'abc', 'ca'];
writeFileSync(
  join(dir, 'tokenizer.json'),
  JSON.stringify({
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({
      id,
      content,
      special: true,
      normalized: false,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: null,
    model: {
      type: 'BPE',
      unk_token: '<unk>',
      vocab: Object.fromEntries(vocab.map((v, i) => [v, i])),
      merges: ['a b', 'ab c', 'c a'],
    },
  }),
);

describe('lsp-offload tokenize', () => {
  it('prints the ids as a JSON array, without special tokens by default', () => {
    const out = execFileSync(process.execPath, [bin, 'tokenize', '--model', dir, '--text', 'abc ca b'], {
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual([7, 8, 4]);
  });

  it('adds the special tokens with --special', async () => {
    expect(JSON.parse(await tokenizeCommand({ model: dir, text: 'abc ca b', special: true }))).toEqual([
      1, 7, 8, 4,
    ]);
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ add_bos_token: true, add_eos_token: true, bos_token: '<s>', eos_token: '</s>' }),
    );
    expect(JSON.parse(await tokenizeCommand({ model: dir, text: 'ab', special: true }))).toEqual([1, 6, 2]);
    rmSync(join(dir, 'tokenizer_config.json'));
  });

  it('fails with the missing file named', () => {
    const missing = join(dir, 'nothing-here');
    const run = spawnSync(process.execPath, [bin, 'tokenize', '--model', missing, '--text', 'a'], {
      encoding: 'utf8',
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`lsp-offload: ${join(missing, 'tokenizer.json')}: not found`);
  });
});
