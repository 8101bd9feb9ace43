// The built-in task of the zero-argument demo: a tiny synthetic language a small model learns in a few
// hundred steps, with no tokenizer.json. Each example is
//   BOS x1 .. xL SEP y1 .. yL EOS
// where x is a random string of L symbols and y is x copied (default), reversed or sorted. The loss
// covers y and EOS. Copying needs attention to the token L+1 places back, which an untrained model
// does not have: before learning, greedy predictions of y are right about 1/symbols of the time (a
// model that has only learned which tokens are symbols), and whole answers almost never (symbols^-L).
// The held-out problems are checked to share no input with the training ones, so a rising held-out
// accuracy is generalisation, not memorisation.
import { Rng } from '../util/rng.js';
import { AnswerAccuracy } from './answer-accuracy.js';
import type { PackedRows } from './packed-rows.js';
import { packExamples } from './packing.js';
import { DATA_RNG_STREAMS } from './rng-streams.js';
import { IGNORE_INDEX, TokenizedExamplesBuilder, type TokenizedExample } from './tokenized-examples.js';

export type DemoTaskKind = 'copy' | 'reverse' | 'sort';

/** The demo's special tokens; symbol k is token FIRST_SYMBOL + k. */
export const DEMO_TOKENS = { pad: 0, bos: 1, sep: 2, eos: 3, firstSymbol: 4 } as const;

export interface DemoTaskOptions {
  /** Default 'copy', the quickest to learn; 'reverse' and 'sort' take a larger model or more steps. */
  readonly kind?: DemoTaskKind;
  /** Distinct symbols, 2..36 (default 10). */
  readonly symbols?: number;
  /** Symbols per input, L (default 8; an example is 2L + 3 tokens). */
  readonly length?: number;
  /** Row length; rows hold as many whole examples as fit (default 64: three examples of 19). */
  readonly seqLen?: number;
  /** Default 4096 examples to train on, 256 held out. */
  readonly trainExamples?: number;
  readonly heldOutExamples?: number;
  readonly seed?: number;
}

export interface DemoTask {
  readonly kind: DemoTaskKind;
  readonly symbols: number;
  readonly length: number;
  readonly seqLen: number;
  /** Token ids in use: 4 specials + symbols. The model's vocabulary may be larger. */
  readonly vocabSize: number;
  readonly train: PackedRows;
  readonly heldOut: PackedRows;
  /** Token accuracy of guessing symbols uniformly: where the metric starts. */
  readonly chanceTokenAccuracy: number;
  /** A metric over y (EOS is left out: its place never changes, so predicting it shows little). */
  accuracy(vocabSize?: number): AnswerAccuracy;
  /** Ids as text: symbols 0-9a-z, BOS '^', SEP '>', EOS '$', PAD '_'. */
  decode(ids: ArrayLike<number>): string;
  /** One line saying what the task is. */
  readonly description: string;
}

const SYMBOL_CHARS = '0123456789abcdefghijklmnopqrstuvwxyz';
const SPECIAL_CHARS = ['_', '^', '>', '$'];

/** The output y for an input x (symbol indices). */
export function demoAnswer(kind: DemoTaskKind, input: readonly number[]): number[] {
  switch (kind) {
    case 'copy':
      return [...input];
    case 'reverse':
      return [...input].reverse();
    case 'sort':
      return [...input].sort((a, b) => a - b);
  }
}

/** One example's ids and labels (the loss on the answer and EOS). */
export function demoExample(kind: DemoTaskKind, input: readonly number[]): TokenizedExample {
  const { bos, sep, eos, firstSymbol } = DEMO_TOKENS;
  const x = input.map((s) => firstSymbol + s);
  const y = demoAnswer(kind, input).map((s) => firstSymbol + s);
  const inputIds = [bos, ...x, sep, ...y, eos];
  const labels = inputIds.map((id, t) => (t < x.length + 2 ? IGNORE_INDEX : id));
  return { inputIds, labels };
}

export function demoTask(options: DemoTaskOptions = {}): DemoTask {
  const kind = options.kind ?? 'copy';
  const symbols = options.symbols ?? 10;
  const length = options.length ?? 8;
  const seqLen = options.seqLen ?? 64;
  const trainCount = options.trainExamples ?? 4096;
  const heldOutCount = options.heldOutExamples ?? 256;
  const seed = options.seed ?? 0;
  checkInteger('symbols', symbols, 2, SYMBOL_CHARS.length);
  checkInteger('length', length, 1, 1024);
  checkInteger('seqLen', seqLen, 2 * length + 3, 1 << 20);
  checkInteger('trainExamples', trainCount, 1, 1 << 24);
  checkInteger('heldOutExamples', heldOutCount, 1, 1 << 24);
  // Guards the rejection loop below: there must be plenty of distinct inputs to draw from.
  if (symbols ** length < 2 * (trainCount + heldOutCount))
    throw new RangeError(
      `${symbols}^${length} inputs are too few for ${trainCount} + ${heldOutCount} distinct problems`,
    );

  const draw = (rng: Rng): number[] => Array.from({ length }, () => rng.below(symbols));
  const trainRng = new Rng(seed, DATA_RNG_STREAMS.demoTrain);
  const trainInputs = Array.from({ length: trainCount }, () => draw(trainRng));
  const seen = new Set(trainInputs.map((x) => x.join(',')));
  const heldOutRng = new Rng(seed, DATA_RNG_STREAMS.demoEval);
  const heldOutInputs: number[][] = [];
  while (heldOutInputs.length < heldOutCount) {
    const x = draw(heldOutRng);
    const key = x.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    heldOutInputs.push(x);
  }

  const pack = (inputs: number[][]): PackedRows => {
    const examples = new TokenizedExamplesBuilder();
    for (const x of inputs) examples.add(demoExample(kind, x));
    // Greedy packing of equal-length examples gives every row the same layout.
    return packExamples(examples.build(), { seqLen, padTokenId: DEMO_TOKENS.pad, layout: 'greedy' });
  };
  const vocabSize = DEMO_TOKENS.firstSymbol + symbols;
  return {
    kind,
    symbols,
    length,
    seqLen,
    vocabSize,
    train: pack(trainInputs),
    heldOut: pack(heldOutInputs),
    chanceTokenAccuracy: 1 / symbols,
    accuracy: (modelVocabSize = vocabSize) =>
      new AnswerAccuracy({ vocabSize: modelVocabSize, ignoreLabels: [DEMO_TOKENS.eos] }),
    decode: (ids) =>
      Array.from(ids, (id) =>
        id < DEMO_TOKENS.firstSymbol
          ? SPECIAL_CHARS[id]!
          : (SYMBOL_CHARS[id - DEMO_TOKENS.firstSymbol] ?? '?'),
      ).join(''),
    description:
      `demo task "${kind}": ${kind} ${length} symbols of ${symbols} after a separator ` +
      `(${trainCount} training problems, ${heldOutCount} held out, rows of ${seqLen} tokens)`,
  };
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`demo task: ${name} ${value} is not an integer in [${min}, ${max}]`);
}
