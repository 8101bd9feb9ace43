// `lsp-offload generate`: continue a prompt with a Hugging Face model directory (an exported model or a
// training checkpoint), streaming the text as it is generated; statistics go to stderr.
import { Command } from 'commander';
import { GpuRuntime, TextGenerator, resolveCheckpoint, resolveWeightDtype } from '@lsp-offload/core';
import { int, positive } from './flags.js';

export interface GenerateCommandOptions {
  model: string;
  prompt?: string;
  promptIds?: string;
  chat?: boolean;
  system?: string;
  maxNewTokens: string;
  temperature: string;
  topK: string;
  topP: string;
  seed: string;
  dtype: string;
  json?: boolean;
}

export function generateCommand(): Command {
  return new Command('generate')
    .description('continue a prompt with a model directory (export or checkpoint), KV-cached on the GPU')
    .requiredOption(
      '--model <dir>',
      'Hugging Face model directory, a training checkpoint, or a --checkpoint-dir (its latest checkpoint)',
    )
    .option('--prompt <text>', "the prompt text (tokenized with the directory's tokenizer.json)")
    .option('--prompt-ids <ids>', 'the prompt as comma-separated token ids instead of text')
    .option('--chat', "wrap the prompt as a user turn with the model's chat template")
    .option('--system <text>', 'with --chat: a system message before the prompt')
    .option('--max-new-tokens <n>', 'tokens to generate at most', '128')
    .option('--temperature <t>', '0: greedy decoding; above 0: sample with this temperature', '0')
    .option('--top-k <k>', 'sample only from the k most likely tokens (0: all)', '0')
    .option('--top-p <p>', 'sample only from the most likely tokens that reach probability p (1: all)', '1')
    .option('--seed <n>', 'sampling seed', '0')
    .option(
      '--dtype <auto|f16|f32>',
      'weight storage on the GPU (auto: f16 where the adapter has it)',
      'auto',
    )
    .option('--json', 'print one JSON object (ids, text, statistics) instead of streaming text')
    .action(async (opts: GenerateCommandOptions) => {
      await runGenerate(opts);
    });
}

function parseIds(text: string): number[] {
  const ids = text.split(',').map((s) => Number(s.trim()));
  if (!ids.length || ids.some((n) => !Number.isInteger(n) || n < 0))
    throw new Error(`--prompt-ids must be comma-separated non-negative integers, got '${text}'`);
  return ids;
}

async function runGenerate(o: GenerateCommandOptions): Promise<void> {
  if ((o.prompt === undefined) === (o.promptIds === undefined))
    throw new Error('give the prompt as --prompt <text> or as --prompt-ids <ids> (one of them)');
  if (o.promptIds !== undefined && o.chat) throw new Error('--chat needs a text --prompt, not --prompt-ids');
  if (o.system !== undefined && !o.chat) throw new Error('--system only applies with --chat');
  const options = {
    maxNewTokens: int('max-new-tokens', o.maxNewTokens),
    temperature: o.temperature === '0' ? 0 : positive('temperature', o.temperature),
    topK: int('top-k', o.topK, 0),
    topP: positive('top-p', o.topP),
    seed: int('seed', o.seed, 0),
  };
  const gpu = await GpuRuntime.create();
  const dtype = resolveWeightDtype(o.dtype, gpu.has('shader-f16'));
  // a --checkpoint-dir folder means its latest checkpoint
  const dir = (await resolveCheckpoint(o.model)) ?? o.model;
  const generator = await TextGenerator.open(gpu, dir, { dtype }).catch((e: unknown) => {
    gpu.destroy();
    throw e;
  });
  try {
    const prompt =
      o.promptIds !== undefined
        ? parseIds(o.promptIds)
        : generator.encode(o.prompt!, {
            chat: o.chat ?? false,
            ...(o.system !== undefined && { system: o.system }),
          });
    const text = generator.tokenizer !== undefined;
    const stream = !o.json;
    const generated: number[] = [];
    let printed = '';
    const result = await generator.generate(prompt, {
      ...options,
      onToken: (id) => {
        generated.push(id);
        if (!stream) return;
        if (!text) {
          process.stdout.write(`${generated.length > 1 ? ',' : ''}${id}`);
          return;
        }
        // decode everything so far: a character may span tokens; hold back an unfinished one
        const full = generator.decode(generated);
        if (full.endsWith('\uFFFD') || !full.startsWith(printed)) return;
        process.stdout.write(full.slice(printed.length));
        printed = full;
      },
    });
    const decoded = text ? generator.decode(result.tokens) : undefined;
    const stats = {
      promptTokens: prompt.length,
      newTokens: result.tokens.length,
      stoppedBy: result.stoppedBy,
      prefillMs: result.prefillMs,
      decodeTokensPerSecond: result.decodeTokensPerSecond,
      dtype,
    };
    if (o.json) {
      console.log(
        JSON.stringify({
          promptIds: prompt,
          ids: result.tokens,
          ...(decoded !== undefined && { text: decoded }),
          ...stats,
        }),
      );
      return;
    }
    if (decoded !== undefined && decoded.startsWith(printed))
      process.stdout.write(decoded.slice(printed.length));
    process.stdout.write('\n');
    process.stderr.write(
      `${stats.newTokens} new tokens after a ${stats.promptTokens}-token prompt (stopped by ${stats.stoppedBy}); ` +
        `prefill ${stats.prefillMs.toFixed(0)} ms, ${Number.isFinite(stats.decodeTokensPerSecond) ? stats.decodeTokensPerSecond.toFixed(1) : '-'} tokens/s; ${dtype} weights\n`,
    );
  } finally {
    generator.release();
    gpu.destroy();
  }
}
