// Typed reads of config.json fields, with errors that name the file and the field.
import { HfFormatError } from './errors.js';

export type JsonObject = Readonly<Record<string, unknown>>;

export class ConfigFields {
  constructor(
    readonly source: string,
    readonly json: JsonObject,
  ) {}

  error(problem: string): HfFormatError {
    return new HfFormatError(this.source, problem);
  }

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  positiveInt(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      throw this.error(`"${key}" must be a positive integer, got ${JSON.stringify(this.json[key])}`);
    return v;
  }

  positiveNumber(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw this.error(`"${key}" must be a positive number, got ${JSON.stringify(this.json[key])}`);
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'boolean') throw this.error(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'string')
      throw this.error(`"${key}" must be a string, got ${JSON.stringify(this.json[key])}`);
    return v;
  }

  /** A token id field: an integer, a list of them (eos in some configs), or absent. */
  tokenIds(key: string): number[] {
    const v = this.json[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((id) => typeof id === 'number' && Number.isSafeInteger(id) && id >= 0))
      throw this.error(`"${key}" must be a token id or a list of them, got ${JSON.stringify(v)}`);
    return list as number[];
  }
}

/** Checks `architectures`, when present, names the causal-LM class we implement. */
export function checkArchitecture(fields: ConfigFields, expected: string): void {
  const list = fields.json.architectures;
  if (list === undefined || list === null) return;
  if (!Array.isArray(list) || !list.includes(expected))
    throw fields.error(
      `"architectures" ${JSON.stringify(list)} does not include ${expected}: only the causal-LM head is supported`,
    );
}

export function savedDtypeOf(fields: ConfigFields): { savedDtype?: string } {
  const v = fields.json.torch_dtype ?? fields.json.dtype;
  return typeof v === 'string' ? { savedDtype: v } : {};
}
