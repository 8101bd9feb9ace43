// The Stanford Alpaca prompt templates (tatsu-lab/stanford_alpaca, train.py PROMPT_DICT), verbatim, so
// models fine-tuned here can be prompted exactly as Alpaca-tuned models are. As there, the prompt ends
// at "### Response:" and the output follows it directly.

export const ALPACA_PROMPT_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:';

export const ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:';

/** The prompt of one record; an empty (or absent) input selects the template without input, as Alpaca does. */
export function alpacaPrompt(instruction: string, input = ''): string {
  const template = input === '' ? ALPACA_PROMPT_NO_INPUT : ALPACA_PROMPT_WITH_INPUT;
  // One pass over the template, so a "{input}" written inside the instruction stays literal text.
  return template.replace(/\{(instruction|input)\}/g, (_, field: string) =>
    field === 'instruction' ? instruction : input,
  );
}
