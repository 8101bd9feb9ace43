// `lsp-offload generate` through the real binary, on a small random LLaMA with the llama-style tokenizer
// of the HF fixtures: text and chat prompts, streaming and JSON output, and the library's greedy tokens.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  GREEDY,
  GpuRuntime,
  HfTokenizer,
  ModelWeights,
  Rng,
  TextGenerator,
  parseModelConfig,
  renderChat,
  writeModelFiles,
} from '@lsp-offload/core';

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const tokenizerDir = fileURLToPath(
  new URL('../../core/fixtures/hf/tokenizers/llama-style/', import.meta.url),
);
const TEMPLATE =
  "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + eos_token }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

let gpu: GpuRuntime;
let dir: string;
let plainDir: string;

beforeAll(async () => {
  gpu = await GpuRuntime.create();
  const base = mkdtempSync(join(tmpdir(), 'generate-cli-'));
  dir = join(base, 'model');
  plainDir = join(base, 'no-template');
  const config = parseModelConfig(
    {
      model_type: 'llama',
      vocab_size: 456,
      hidden_size: 48,
      intermediate_size: 80,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 64,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: false,
    },
    'test model',
  );
  // std 0.3: peaked enough that the greedy choices are far from ties
  const weights = ModelWeights.random(gpu, config, 'f32', new Rng(3), 0.3);
  const tokenizerConfig = JSON.parse(readFileSync(join(tokenizerDir, 'tokenizer_config.json'), 'utf8'));
  for (const [d, template] of [
    [dir, TEMPLATE],
    [plainDir, undefined],
  ] as const) {
    mkdirSync(d, { recursive: true });
    await writeModelFiles(d, gpu, weights);
    copyFileSync(join(tokenizerDir, 'tokenizer.json'), join(d, 'tokenizer.json'));
    writeFileSync(
      join(d, 'tokenizer_config.json'),
      JSON.stringify({ ...tokenizerConfig, ...(template && { chat_template: template }) }),
    );
  }
  weights.release();
});
afterAll(() => gpu?.destroy());

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, 'generate', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('lsp-offload generate', () => {
  it('streams the greedy continuation of a text prompt: the library API gives the same tokens', async () => {
    const hello = ['--model', dir, '--prompt', 'hello world', '--max-new-tokens', '12', '--dtype', 'f32'];
    const json = cli([...hello, '--json']);
    expect(json.stderr).not.toMatch(/lsp-offload:/);
    const out = JSON.parse(json.stdout.trim().split('\n').pop()!);
    const tokenizer = await HfTokenizer.load(dir);
    expect(out.promptIds).toEqual(tokenizer.encode('hello world', { addSpecialTokens: true }));
    expect(out.ids.length).toBeGreaterThan(0);
    expect(out.ids.length).toBeLessThanOrEqual(12);
    expect(out.text).toBe(tokenizer.decode(out.ids, { skipSpecialTokens: true }));
    expect(out.decodeTokensPerSecond).toBeGreaterThan(0);

    const generator = await TextGenerator.open(gpu, dir, { dtype: 'f32' });
    try {
      const mine = await generator.generate(out.promptIds, { ...GREEDY, maxNewTokens: 12, seed: 0 });
      expect(mine.tokens).toEqual(out.ids);
    } finally {
      generator.release();
    }

    const streamed = cli(hello);
    expect(streamed.stdout).toBe(`${out.text}\n`);
    expect(streamed.stderr).toMatch(
      /\d+ new tokens after a \d+-token prompt \(stopped by [a-z ]+\); prefill \d+ ms, [\d.-]+ tokens\/s; f32 weights/,
    );
  });

  it('--chat renders the chat template (with --system), sampling is seeded', async () => {
    const args = [
      '--model',
      dir,
      '--prompt',
      'hi',
      '--chat',
      '--system',
      'be brief',
      '--max-new-tokens',
      '6',
      '--json',
    ];
    const sampled = ['--temperature', '0.8', '--top-k', '50', '--top-p', '0.9', '--seed', '7'];
    const a = JSON.parse(cli([...args, ...sampled]).stdout);
    const b = JSON.parse(cli([...args, ...sampled]).stdout);
    const tokenizer = await HfTokenizer.load(dir);
    const text = renderChat(
      TEMPLATE,
      [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
      { bosToken: '<s>', eosToken: '</s>', addGenerationPrompt: true },
    );
    expect(text).toBe('<|system|>be brief</s><|user|>hi</s><|assistant|>');
    expect(a.promptIds).toEqual(tokenizer.encode(text, { addSpecialTokens: false }));
    expect(b.ids).toEqual(a.ids);
  });

  it('says what is wrong with bad arguments', () => {
    expect(cli(['--model', plainDir, '--prompt', 'hi', '--chat']).stderr).toMatch(/has no chat template/);
    expect(cli(['--model', dir, '--prompt', 'hi', '--prompt-ids', '1']).stderr).toMatch(/one of them/);
    expect(cli(['--model', dir, '--prompt-ids', '1,x']).stderr).toMatch(
      /--prompt-ids must be comma-separated/,
    );
    expect(cli(['--model', dir, '--prompt', 'hi', '--top-p', '2']).stderr).toMatch(
      /top-p must be in \(0, 1\]/,
    );
    const r = cli(['--model', dir, '--prompt', 'hi', '--dtype', 'f8']);
    expect([r.status, r.stderr]).toEqual([1, expect.stringMatching(/--dtype must be auto, f16 or f32/)]);
  });
});
