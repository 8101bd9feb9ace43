// Tokenization with the loss mask: text records learn every token, prompt/response and alpaca records
// only the response; BOS where the tokenizer adds one, EOS after every example.
import { describe, expect, it } from 'vitest';
import {
  ALPACA_PROMPT_NO_INPUT,
  ALPACA_PROMPT_WITH_INPUT,
  DataFormatError,
  ExampleEncoder,
  IGNORE_INDEX,
  alpacaPrompt,
  recordFromJson,
  type DataRecord,
} from '../../src/data/index.js';
import { BOS, EOS, charIds, gpt2StyleTokenizer, llamaStyleTokenizer } from './helpers.js';

const M = IGNORE_INDEX;
const masked = (n: number): number[] => Array<number>(n).fill(M);

function recordOf(value: unknown): DataRecord {
  const parsed = recordFromJson(value);
  if ('problem' in parsed) throw new Error(parsed.problem);
  return parsed.record;
}

describe('alpacaPrompt', () => {
  it('fills the Stanford Alpaca templates, choosing by whether there is an input', () => {
    expect(alpacaPrompt('Name a color.')).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.' +
        '\n\n### Instruction:\nName a color.\n\n### Response:',
    );
    expect(alpacaPrompt('Translate.', 'hola')).toBe(
      'Below is an instruction that describes a task, paired with an input that provides further context. ' +
        'Write a response that appropriately completes the request.' +
        '\n\n### Instruction:\nTranslate.\n\n### Input:\nhola\n\n### Response:',
    );
    expect(ALPACA_PROMPT_NO_INPUT).toContain('{instruction}');
    expect(ALPACA_PROMPT_WITH_INPUT).toContain('{input}');
  });

  it('keeps placeholders and $-patterns written in the data as literal text', () => {
    expect(alpacaPrompt('use {input} and $&', 'x $1')).toContain(
      '### Instruction:\nuse {input} and $&\n\n### Input:\nx $1\n',
    );
  });
});

describe('ExampleEncoder', () => {
  it('LLaMA-style: BOS first (masked), the whole text learned, EOS appended and learned', () => {
    const encoder = new ExampleEncoder(llamaStyleTokenizer());
    expect(encoder.leadingTokens).toEqual([BOS]);
    const { inputIds, labels } = encoder.encode({ kind: 'text', text: 'hi there' });
    const text = charIds('hi there');
    expect(inputIds).toEqual([BOS, ...text, EOS]);
    expect(labels).toEqual([M, ...text, EOS]);
  });

  it('GPT-2-style: no BOS when the tokenizer adds none', () => {
    const encoder = new ExampleEncoder(gpt2StyleTokenizer());
    expect(encoder.leadingTokens).toEqual([]);
    expect(encoder.encode({ kind: 'text', text: 'x' })).toEqual({
      inputIds: [...charIds('x'), EOS],
      labels: [...charIds('x'), EOS],
    });
  });

  it('prompt/response: the prompt masked, the response and EOS learned', () => {
    const encoder = new ExampleEncoder(llamaStyleTokenizer());
    const { inputIds, labels } = encoder.encode(recordOf({ prompt: 'Q: 2+2?', response: ' 4' }));
    const prompt = charIds('Q: 2+2?');
    const response = charIds('Q: 2+2? 4').slice(prompt.length);
    expect(response.length).toBe(2);
    expect(inputIds).toEqual([BOS, ...prompt, ...response, EOS]);
    expect(labels).toEqual([M, ...masked(prompt.length), ...response, EOS]);
  });

  it('alpaca: the templated prompt masked, the output and EOS learned', () => {
    const encoder = new ExampleEncoder(llamaStyleTokenizer());
    for (const input of ['', 'some input']) {
      const { inputIds, labels } = encoder.encode(
        recordOf({ instruction: 'Do it.', input, output: 'Done.' }),
      );
      const prompt = charIds(alpacaPrompt('Do it.', input));
      const all = charIds(alpacaPrompt('Do it.', input) + 'Done.');
      expect(inputIds).toEqual([BOS, ...all, EOS]);
      expect(labels).toEqual([M, ...masked(prompt.length), ...all.slice(prompt.length), EOS]);
      // What is learned decodes to exactly the output.
      const learned = labels.slice(0, -1).filter((l) => l !== M);
      expect(llamaStyleTokenizer().decode(learned)).toBe('Done.');
    }
  });

  it('labels a token merged across the prompt/response boundary: it holds response text', () => {
    // "xa" + "b": alone the prompt is ▁ x a; together the text is ▁ x ab.
    const encoder = new ExampleEncoder(llamaStyleTokenizer());
    const { inputIds, labels } = encoder.encode({ kind: 'prompt-response', prompt: 'xa', response: 'b' });
    const ab = llamaStyleTokenizer().tokenToId('ab')!;
    expect(inputIds).toEqual([BOS, ...charIds('x'), ab, EOS]);
    expect(labels).toEqual([M, M, M, ab, EOS]);
  });

  it('with add_eos_token, still puts EOS only after the response', () => {
    const encoder = new ExampleEncoder(llamaStyleTokenizer({ add_eos_token: true }));
    expect(encoder.leadingTokens).toEqual([BOS]);
    const { inputIds } = encoder.encode({ kind: 'prompt-response', prompt: 'p', response: 'r' });
    expect(inputIds.filter((id) => id === EOS)).toHaveLength(1);
    expect(inputIds.at(-1)).toBe(EOS);
  });

  it('needs an EOS: from the tokenizer or given', () => {
    const noEos = { encode: (text: string): number[] => [...text].map((c) => c.charCodeAt(0)) };
    expect(() => new ExampleEncoder(noEos)).toThrow(DataFormatError);
    expect(() => new ExampleEncoder(noEos)).toThrow(/defines no eos_token/);
    const encoder = new ExampleEncoder(noEos, { eosTokenId: 0 });
    expect(encoder.encode({ kind: 'text', text: 'ab' })).toEqual({
      inputIds: [97, 98, 0],
      labels: [97, 98, 0],
    });
  });
});
