// The record kinds a data file can hold, and how one JSONL value becomes a record. Alpaca records are
// turned into prompt/response here (through the Alpaca template), so everything downstream knows only
// two kinds: text (loss on every token) and prompt/response (loss on the response only).
import { alpacaPrompt } from './alpaca-template.js';
import type { RecordSource } from './errors.js';

export type DataRecord =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'prompt-response'; readonly prompt: string; readonly response: string };

/** The JSONL layout a record was written in (for the report). */
export type RecordFormat = 'text' | 'prompt-response' | 'alpaca';

export interface SourcedRecord {
  readonly record: DataRecord;
  readonly format: RecordFormat;
  readonly source: RecordSource;
}

const FORMAT_FIELDS: Readonly<Record<RecordFormat, readonly string[]>> = {
  text: ['text'],
  'prompt-response': ['prompt', 'response'],
  alpaca: ['instruction', 'input', 'output'],
};

const FORMAT_NAMES = '{"text"}, {"prompt", "response"} or {"instruction", "input", "output"}';

/** A parsed record, or the reason the value is not one. Fields of other names are ignored. */
export type ParsedRecord =
  { readonly record: DataRecord; readonly format: RecordFormat } | { readonly problem: string };

/** One JSONL value as a record. The format is told by its field names; mixing two formats is an error. */
export function recordFromJson(value: unknown): ParsedRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { problem: `expected a JSON object with ${FORMAT_NAMES}` };
  const fields = value as Record<string, unknown>;
  const formats = (Object.keys(FORMAT_FIELDS) as RecordFormat[]).filter((f) =>
    FORMAT_FIELDS[f].some((name) => name in fields),
  );
  if (formats.length === 0) return { problem: `has none of the fields ${FORMAT_NAMES}` };
  if (formats.length > 1)
    return {
      problem: `mixes the fields of several formats (${formats.join(', ')}); use one of ${FORMAT_NAMES}`,
    };
  const format = formats[0]!;
  switch (format) {
    case 'text': {
      const text = requireText(fields, 'text');
      return typeof text === 'string' ? { record: { kind: 'text', text }, format } : text;
    }
    case 'prompt-response': {
      // An empty prompt is allowed (the record is then all response); an empty response teaches nothing.
      const prompt = requireString(fields, 'prompt');
      if (typeof prompt !== 'string') return prompt;
      const response = requireText(fields, 'response');
      if (typeof response !== 'string') return response;
      return { record: { kind: 'prompt-response', prompt, response }, format };
    }
    case 'alpaca': {
      const instruction = requireText(fields, 'instruction');
      if (typeof instruction !== 'string') return instruction;
      // Alpaca's own data always has "input" (often ""); other dumps leave it out when empty.
      const input = 'input' in fields ? requireString(fields, 'input') : '';
      if (typeof input !== 'string') return input;
      const output = requireText(fields, 'output');
      if (typeof output !== 'string') return output;
      return {
        record: { kind: 'prompt-response', prompt: alpacaPrompt(instruction, input), response: output },
        format,
      };
    }
  }
}

function requireString(fields: Record<string, unknown>, name: string): string | { problem: string } {
  const value = fields[name];
  if (value === undefined) return { problem: `missing the field "${name}"` };
  if (typeof value !== 'string')
    return { problem: `the field "${name}" is ${describe(value)}, not a string` };
  return value;
}

/** A string with something besides whitespace in it. */
function requireText(fields: Record<string, unknown>, name: string): string | { problem: string } {
  const value = requireString(fields, name);
  if (typeof value === 'string' && value.trim() === '') return { problem: `the field "${name}" is empty` };
  return value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
