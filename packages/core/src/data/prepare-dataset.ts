// From data files to packed training and held-out rows in one call: read (streaming), tokenize,
// split off the held-out examples by the seed, pack each part. What the trainer calls for --data.
import { DataFormatError } from './errors.js';
import type { InvalidLine } from './errors.js';
import { ExampleEncoder, type ExampleTokenizer } from './example-encoder.js';
import { DEFAULT_HELD_OUT, splitHeldOut, type HeldOutSize } from './held-out-split.js';
import { InvalidLineLog, type InvalidLinePolicy } from './invalid-lines.js';
import type { PackedRows, PackingStats } from './packed-rows.js';
import { packExamples, type OverlongPolicy, type PackingLayout } from './packing.js';
import { readRecords } from './read-records.js';
import type { RecordFormat } from './records.js';
import type { TextDocumentSplit } from './text-reader.js';
import { TokenizedExamplesBuilder, type TokenizedExample } from './tokenized-examples.js';

export interface PrepareDatasetOptions {
  /** .jsonl and .txt files, read in this order. */
  readonly files: readonly string[];
  readonly tokenizer: ExampleTokenizer;
  readonly seqLen: number;
  /** Chooses the held-out examples (the loader's shuffle takes its own seed). */
  readonly seed: number;
  /** Default DEFAULT_HELD_OUT (5 %, at most 1000 examples). */
  readonly heldOut?: HeldOutSize;
  /**
   * Evaluate on every example of these files (an evaluation set chosen by the caller, e.g. split by
   * source file so no file feeds both sides); the held-out split of `files` then serves projector refits
   * only, so the projectors are never fitted on the evaluation set.
   */
  readonly evalFiles?: readonly string[];
  /** Default 'greedy' (an example that fits a row is never split). */
  readonly layout?: PackingLayout;
  /** Default 'truncate'. */
  readonly overlong?: OverlongPolicy;
  /** Default 'error': stop at invalid lines, naming them; 'skip' leaves them out and counts them. */
  readonly invalidLines?: InvalidLinePolicy;
  /** Default 'blank-lines'. */
  readonly textDocuments?: TextDocumentSplit;
  /** Default: the tokenizer's EOS. */
  readonly eosTokenId?: number;
  /** Default: the EOS id (padding is never attended to by later tokens and carries no loss). */
  readonly padTokenId?: number;
}

export interface DatasetReport {
  readonly files: readonly string[];
  /** Records read, by the layout they were written in. */
  readonly records: Readonly<Record<RecordFormat, number>>;
  /** Invalid lines skipped (policy 'skip'), and the first few of them. */
  readonly invalidLines: number;
  readonly firstInvalidLines: readonly InvalidLine[];
  readonly train: PackingStats;
  readonly heldOut: PackingStats;
  /** Only with evalFiles. */
  readonly evaluation?: PackingStats;
}

export interface PreparedDataset {
  readonly train: PackedRows;
  /** Held out of `files` by the seed: evaluations (unless evalFiles are given) and projector refits. */
  readonly heldOut: PackedRows;
  /** What evaluations run on: the evalFiles' examples, else `heldOut`. */
  readonly evaluation: PackedRows;
  readonly report: DatasetReport;
}

export async function prepareDataset(options: PrepareDatasetOptions): Promise<PreparedDataset> {
  const encoder = new ExampleEncoder(
    options.tokenizer,
    options.eosTokenId === undefined ? {} : { eosTokenId: options.eosTokenId },
  );
  const invalid = new InvalidLineLog(options.invalidLines ?? 'error');
  const records: Record<RecordFormat, number> = { text: 0, 'prompt-response': 0, alpaca: 0 };
  const readOptions = { invalid, ...(options.textDocuments ? { textDocuments: options.textDocuments } : {}) };
  const readExamples = async (files: readonly string[]) => {
    const examples = new TokenizedExamplesBuilder();
    for await (const { record, format, source } of readRecords(files, readOptions)) {
      let example: TokenizedExample;
      try {
        example = encoder.encode(record);
      } catch (e) {
        // A text the tokenizer cannot encode (e.g. no unknown token) is a bad line like any other.
        invalid.add({ ...source, problem: `cannot tokenize: ${(e as Error).message}` });
        continue;
      }
      examples.add(example);
      records[format]++;
    }
    const read = examples.build();
    if (read.count === 0) throw new DataFormatError(`no usable records in ${files.join(', ')}`);
    return read;
  };
  const all = await readExamples(options.files);
  const evalFiles = options.evalFiles ?? [];
  const evalExamples = evalFiles.length ? await readExamples(evalFiles) : undefined;
  const split = splitHeldOut(all.count, options.heldOut ?? DEFAULT_HELD_OUT, options.seed);
  const packing = {
    seqLen: options.seqLen,
    padTokenId: options.padTokenId ?? encoder.eosTokenId,
    ...(options.layout ? { layout: options.layout } : {}),
    ...(options.overlong ? { overlong: options.overlong } : {}),
  };
  const train = packExamples(all.select(split.train), packing);
  const heldOut = packExamples(all.select(split.heldOut), packing);
  const evaluation = evalExamples ? packExamples(evalExamples, packing) : heldOut;
  return {
    train,
    heldOut,
    evaluation,
    report: {
      files: [...options.files, ...evalFiles],
      records,
      invalidLines: invalid.count,
      firstInvalidLines: invalid.first,
      train: train.stats,
      heldOut: heldOut.stats,
      ...(evalExamples && { evaluation: evaluation.stats }),
    },
  };
}

/** A few lines for the CLI: what was read, what was left out or cut, how full the rows are. */
export function describeDataset(report: DatasetReport): string {
  const { records, train, heldOut } = report;
  const kinds = (Object.keys(records) as RecordFormat[])
    .filter((k) => records[k] > 0)
    .map((k) => `${records[k]} ${k}`)
    .join(', ');
  const fill = (s: PackingStats): string =>
    s.rows === 0 ? '' : `, ${((100 * s.tokens) / (s.tokens + s.padTokens)).toFixed(1)} % filled`;
  const lines = [
    `data: ${kinds} record(s) from ${report.files.length} file(s)`,
    `train: ${train.examples} examples in ${train.rows} rows, ${train.labelTokens} loss tokens${fill(train)}`,
    `held out: ${heldOut.examples} examples in ${heldOut.rows} rows, ${heldOut.labelTokens} loss tokens${fill(heldOut)}`,
  ];
  const evaluation = report.evaluation;
  if (evaluation)
    lines.push(
      `evaluation (own files): ${evaluation.examples} examples in ${evaluation.rows} rows, ${evaluation.labelTokens} loss tokens${fill(evaluation)}`,
    );
  if (report.invalidLines > 0)
    lines.push(
      `skipped ${report.invalidLines} invalid line(s), first: ` +
        report.firstInvalidLines.map((b) => `${b.file}:${b.line} (${b.problem})`).join('; '),
    );
  const parts = evaluation ? [train, heldOut, evaluation] : [train, heldOut];
  const sum = (f: (s: PackingStats) => number) => parts.reduce((n, s) => n + f(s), 0);
  const truncated = sum((s) => s.truncatedExamples);
  if (truncated > 0)
    lines.push(
      `truncated ${truncated} example(s) longer than the sequence length, dropping ` +
        `${sum((s) => s.truncatedLabelTokens)} loss tokens`,
    );
  return lines.join('\n');
}
