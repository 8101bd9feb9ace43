// The chat template of a Hugging Face model directory (chat_template.jinja, or "chat_template" in
// tokenizer_config.json), rendered with @huggingface/jinja like transformers' apply_chat_template.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { HfFormatError } from '../hf/errors.js';
import { isPlainObject } from '../hf/safetensors-header.js';

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

/** The directory's chat template, or undefined when it has none. */
export async function loadChatTemplate(dir: string): Promise<string | undefined> {
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return readFile(jinja, 'utf8');
  const configPath = join(dir, 'tokenizer_config.json');
  if (!existsSync(configPath)) return undefined;
  const config: unknown = JSON.parse(await readFile(configPath, 'utf8'));
  const template = isPlainObject(config) ? config.chat_template : undefined;
  if (template === undefined || template === null) return undefined;
  if (typeof template === 'string') return template;
  // a list of named templates: transformers uses the one named "default"
  if (Array.isArray(template)) {
    const named = template.find((t) => isPlainObject(t) && t.name === 'default');
    if (isPlainObject(named) && typeof named.template === 'string') return named.template;
  }
  throw new HfFormatError(
    configPath,
    'chat_template is neither a string nor a list with a "default" template',
  );
}

export interface RenderChatOptions {
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** End with the assistant's turn opened, as for generating its reply. */
  readonly addGenerationPrompt: boolean;
}

/** The conversation as the template writes it (special tokens as text: tokenize without adding more). */
export function renderChat(template: string, messages: readonly ChatMessage[], o: RenderChatOptions): string {
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new Error(`the chat template does not parse: ${(e as Error).message}`, { cause: e });
  }
  try {
    return compiled.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: o.addGenerationPrompt,
      bos_token: o.bosToken ?? '',
      eos_token: o.eosToken ?? '',
    });
  } catch (e) {
    throw new Error(`the chat template refused the conversation: ${(e as Error).message}`, { cause: e });
  }
}
