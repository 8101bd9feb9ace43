// Generation from a Hugging Face model directory: an exported model or a training checkpoint (both hold
// config.json and the weights; the tokenizer, generation config and chat template are used when there).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GpuRuntime } from '@lsp-offload/gpu-dawn';
import { HfTokenizer, openHfModel } from '../hf/index.js';
import { isPlainObject } from '../hf/safetensors-header.js';
import { Transformer } from '../model/transformer.js';
import { ModelWeights, type WeightDtype } from '../model/weights.js';
import { loadChatTemplate, renderChat, type ChatMessage } from './chat-template.js';
import { generateTokens, type GenerateOptions, type GenerateResult } from './generator.js';

export class TextGenerator {
  private constructor(
    readonly model: Transformer,
    readonly weights: ModelWeights,
    /** undefined when the directory has no tokenizer.json (token ids only). */
    readonly tokenizer: HfTokenizer | undefined,
    /** generation_config.json's eos_token_id, else config.json's, else the tokenizer's EOS. */
    readonly stopTokenIds: readonly number[],
    readonly chatTemplate: string | undefined,
  ) {}

  static async open(gpu: GpuRuntime, dir: string, options: { dtype: WeightDtype }): Promise<TextGenerator> {
    const hf = await openHfModel(dir);
    let weights: ModelWeights;
    try {
      weights = await ModelWeights.load(gpu, hf, options.dtype);
    } finally {
      await hf.close();
    }
    try {
      const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? await HfTokenizer.load(dir) : undefined;
      const stop =
        (await eosIdsOf(join(dir, 'generation_config.json'))) ??
        (await eosIdsOf(join(dir, 'config.json'))) ??
        (tokenizer?.eosTokenId !== undefined ? [tokenizer.eosTokenId] : []);
      const model = new Transformer(gpu, weights, { checkpointing: false });
      return new TextGenerator(model, weights, tokenizer, stop, await loadChatTemplate(dir));
    } catch (e) {
      weights.release();
      throw e;
    }
  }

  /** The prompt's token ids: the text as the model saw it in training, or rendered by the chat template. */
  encode(prompt: string, options: { chat: boolean; system?: string }): number[] {
    const tokenizer = this.requireTokenizer();
    if (!options.chat) return tokenizer.encode(prompt, { addSpecialTokens: true });
    if (!this.chatTemplate)
      throw new Error(
        'this model directory has no chat template (chat_template.jinja or "chat_template" in tokenizer_config.json): drop --chat',
      );
    const messages: ChatMessage[] = [
      ...(options.system !== undefined ? [{ role: 'system', content: options.system }] : []),
      { role: 'user', content: prompt },
    ];
    const text = renderChat(this.chatTemplate, messages, {
      ...(tokenizer.bosToken !== undefined && { bosToken: tokenizer.bosToken }),
      ...(tokenizer.eosToken !== undefined && { eosToken: tokenizer.eosToken }),
      addGenerationPrompt: true,
    });
    // the template wrote the special tokens itself, as apply_chat_template tokenizes
    return tokenizer.encode(text, { addSpecialTokens: false });
  }

  decode(ids: readonly number[]): string {
    return this.requireTokenizer().decode(ids, { skipSpecialTokens: true });
  }

  generate(
    prompt: readonly number[],
    options: Omit<GenerateOptions, 'stopTokenIds'> & { stopTokenIds?: readonly number[] },
  ): Promise<GenerateResult> {
    return generateTokens(this.model, prompt, { stopTokenIds: this.stopTokenIds, ...options });
  }

  release(): void {
    this.model.release();
    this.weights.release();
  }

  private requireTokenizer(): HfTokenizer {
    if (!this.tokenizer)
      throw new Error('this model directory has no tokenizer.json: give the prompt as token ids');
    return this.tokenizer;
  }
}

/** eos_token_id of a JSON file (a number or a list), or undefined when the file or field is absent. */
async function eosIdsOf(path: string): Promise<number[] | undefined> {
  if (!existsSync(path)) return undefined;
  const json: unknown = JSON.parse(await readFile(path, 'utf8'));
  const eos = isPlainObject(json) ? json.eos_token_id : undefined;
  if (typeof eos === 'number') return [eos];
  if (Array.isArray(eos) && eos.every((x) => typeof x === 'number')) return eos as number[];
  return undefined;
}
