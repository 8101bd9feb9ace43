// Generation against Hugging Face transformers: greedy continuations of the tiny fixture models (made by
// fixtures/make_generate_fixtures.py with transformers' generate, do_sample=False) must be ours token for
// token, from the model directory, a training checkpoint and an export; the KV-cached logits must equal a
// full recompute; and chat templates must render as apply_chat_template does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import {
  KvCache,
  TextGenerator,
  Trainer,
  GREEDY,
  exportHfModel,
  renderChat,
  saveCheckpoint,
  type WeightDtype,
} from '../../src/index.js';

const fixtures = fileURLToPath(new URL('../../fixtures/hf/', import.meta.url));

interface GreedyCase {
  prompt: number[];
  tokens: number[];
  margins: number[];
}
interface ChatCase {
  messages: { role: string; content: string }[];
  add_generation_prompt: boolean;
  text: string;
  ids: number[];
}
interface Fixture {
  new_tokens: number;
  models: Record<
    string,
    { greedy: GreedyCase[]; eos: { prompt: number[]; eos_token_id: number; tokens: number[] } }
  >;
  chat: Record<
    string,
    Record<
      string,
      { template: string; cases: ChatCase[]; error?: { messages: ChatCase['messages']; message: string } }
    >
  >;
}

const fixture = JSON.parse(readFileSync(join(fixtures, 'generate.json'), 'utf8')) as Fixture;

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

const dtypeOf = (name: string): WeightDtype => (name.endsWith('-f16') ? 'f16' : 'f32');

async function greedy(generator: TextGenerator, prompt: number[], stop: number[] = []): Promise<number[]> {
  const result = await generator.generate(prompt, {
    ...GREEDY,
    maxNewTokens: fixture.new_tokens,
    seed: 0,
    stopTokenIds: stop,
  });
  return result.tokens;
}

describe('generate: greedy continuations equal transformers', () => {
  for (const [name, reference] of Object.entries(fixture.models)) {
    it(`${name}: ${reference.greedy.length} prompts, ${fixture.new_tokens} new tokens, and the EOS stop`, async () => {
      const generator = await TextGenerator.open(gpu, join(fixtures, name), { dtype: dtypeOf(name) });
      try {
        for (const c of reference.greedy) {
          const streamed: number[] = [];
          const result = await generator.generate(c.prompt, {
            ...GREEDY,
            maxNewTokens: fixture.new_tokens,
            seed: 0,
            stopTokenIds: [],
            onToken: (id) => void streamed.push(id),
          });
          expect(result.tokens, `prompt ${JSON.stringify(c.prompt)}`).toEqual(c.tokens);
          expect(streamed).toEqual(c.tokens);
          expect(result.stoppedBy).toBe('max new tokens');
        }
        const { prompt, eos_token_id, tokens } = reference.eos;
        expect(await greedy(generator, prompt, [eos_token_id])).toEqual(tokens);
      } finally {
        generator.release();
      }
    });
  }

  it('KV-cached logits of every position equal a full recompute of the sequence', async () => {
    const generator = await TextGenerator.open(gpu, join(fixtures, 'llama-gqa'), { dtype: 'f32' });
    const model = generator.model;
    const c = fixture.models['llama-gqa']!.greedy[2]!;
    const sequence = Int32Array.from([...c.prompt, ...c.tokens]);
    const full = (await gpu.read(
      await model.logits({ batch: 1, seqLen: sequence.length, inputIds: sequence, labels: sequence }),
    )) as Float32Array;
    const V = model.config.vocabSize;
    const cache = new KvCache(gpu, model.config, sequence.length);
    try {
      // the prompt at once, then one token at a time
      const steps = [c.prompt.length, ...c.tokens.map(() => 1)];
      let at = 0;
      for (const rows of steps) {
        const logits = await model.nextTokenLogits(sequence.subarray(at, at + rows), cache);
        cache.advance(rows);
        at += rows;
        const got = (await gpu.read(logits)) as Float32Array;
        logits.release();
        const want = full.subarray((at - 1) * V, at * V);
        let worst = 0;
        for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
        expect(worst, `position ${at - 1}`).toBeLessThan(2e-5);
      }
    } finally {
      cache.release();
      generator.release();
    }
  });

  it('works on a training checkpoint and on an exported model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'generate-'));
    const source = join(fixtures, 'gpt2');
    const opened = await TextGenerator.open(gpu, source, { dtype: 'f32' });
    const trainer = await Trainer.create(gpu, opened.weights, {
      mode: 'native',
    });
    await saveCheckpoint(join(dir, 'ckpt'), { trainer, sourceDir: source });
    await exportHfModel(join(dir, 'export'), trainer, { sourceDir: source });
    await trainer.destroy();
    opened.release();
    const c = fixture.models.gpt2!.greedy[1]!;
    for (const sub of ['ckpt', 'export']) {
      const generator = await TextGenerator.open(gpu, join(dir, sub), { dtype: 'f32' });
      try {
        expect(generator.stopTokenIds).toEqual([0]); // generation_config.json went along
        expect(await greedy(generator, c.prompt), sub).toEqual(c.tokens);
      } finally {
        generator.release();
      }
    }
  });

  it('refuses a prompt that leaves no position to generate, and bad sampling options', async () => {
    const generator = await TextGenerator.open(gpu, join(fixtures, 'gpt2'), { dtype: 'f32' });
    try {
      const positions = generator.model.config.maxPositions;
      await expect(greedy(generator, new Array<number>(positions).fill(1))).rejects.toThrow(
        `the prompt has ${positions} tokens; the model has ${positions} positions`,
      );
      const base = { maxNewTokens: 2, seed: 0, stopTokenIds: [] };
      await expect(generator.generate([1], { ...base, ...GREEDY, topP: 0 })).rejects.toThrow(
        /top-p must be in \(0, 1\]/,
      );
      await expect(generator.generate([1], { ...base, ...GREEDY, temperature: -1 })).rejects.toThrow(
        /temperature/,
      );
      await expect(generator.generate([1], { ...GREEDY, ...base, maxNewTokens: 0 })).rejects.toThrow(
        /max new tokens/,
      );
      // generation stops where the model's positions end
      const result = await generator.generate([1, 2], { ...GREEDY, ...base, maxNewTokens: 100 });
      expect([result.tokens.length, result.stoppedBy]).toEqual([positions - 2, 'model positions']);
    } finally {
      generator.release();
    }
  });
});

describe('chat templates render as transformers apply_chat_template', () => {
  const tokenizers = { 'llama-style': ['<s>', '</s>'], 'gpt2-style': ['<|endoftext|>', '<|endoftext|>'] };
  for (const [tokenizer, templates] of Object.entries(fixture.chat)) {
    for (const [name, t] of Object.entries(templates)) {
      it(`${tokenizer} / ${name}`, () => {
        const [bosToken, eosToken] = tokenizers[tokenizer as keyof typeof tokenizers];
        for (const c of t.cases)
          expect(
            renderChat(t.template, c.messages, {
              bosToken,
              eosToken,
              addGenerationPrompt: c.add_generation_prompt,
            }),
          ).toBe(c.text);
        if (t.error)
          expect(() => renderChat(t.template, t.error!.messages, { addGenerationPrompt: false })).toThrow(
            t.error.message,
          );
      });
    }
  }

  it('--chat prompts: the template from tokenizer_config.json, tokenized as transformers does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chat-'));
    for (const f of readdirSync(join(fixtures, 'llama-gqa')))
      copyFileSync(join(fixtures, 'llama-gqa', f), join(dir, f));
    const tokenizerDir = join(fixtures, 'tokenizers', 'llama-style');
    copyFileSync(join(tokenizerDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const { template, cases } = fixture.chat['llama-style']!.llama2!;
    const config = JSON.parse(readFileSync(join(tokenizerDir, 'tokenizer_config.json'), 'utf8'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: template }));
    const generator = await TextGenerator.open(gpu, dir, { dtype: 'f32' });
    try {
      const single = cases.find((c) => c.messages.length === 1 && c.add_generation_prompt)!;
      expect(generator.encode(single.messages[0]!.content, { chat: true })).toEqual(single.ids);
      const withSystem = cases.find((c) => c.messages.length === 4)!;
      expect(withSystem.messages[0]!.role).toBe('system');
      // plain prompts get the BOS the tokenizer adds
      expect(generator.encode('hello world', { chat: false })[0]).toBe(1);
    } finally {
      generator.release();
    }
  });
});
