// Training batches: the packed rows in a seeded random order, epoch after epoch, as an endless stream
// cut into batches of a fixed size (a batch may span two epochs, so every batch is full and every row
// is seen once per epoch). Its position is a small JSON-safe state, saved with checkpoints, from which
// a fresh loader continues with exactly the batches the interrupted one would have produced.
import { Rng, type RngState } from '../util/rng.js';
import { DataFormatError } from './errors.js';
import type { PackedRows } from './packed-rows.js';
import { DATA_RNG_STREAMS } from './rng-streams.js';
import { gatherBatch, type DataBatch } from './data-batch.js';

export interface BatchLoaderOptions {
  readonly batchSize: number;
  /** Seeds the row order (ignored when resuming: the saved state carries the generator). */
  readonly seed: number;
  /** Default true; false keeps the packed order every epoch. */
  readonly shuffle?: boolean;
}

export interface BatchLoaderState {
  /** 0-based epoch of the next row. */
  readonly epoch: number;
  /** Position of the next row in this epoch's order. */
  readonly index: number;
  /** The generator as it was before drawing this epoch's order (so the order can be drawn again). */
  readonly rng: RngState;
  readonly shuffle: boolean;
  /** The data and batch shape the state belongs to, checked on resume. */
  readonly rowCount: number;
  readonly seqLen: number;
  readonly batchSize: number;
  readonly dataFingerprint: string;
}

export class BatchLoader {
  readonly batchSize: number;
  private readonly shuffle: boolean;
  private readonly rng: Rng;
  private epochValue: number;
  private index: number;
  private epochStart!: RngState;
  private order!: number[];

  /** `resume`: a state from `state()`, to continue where that loader was. */
  constructor(
    private readonly data: PackedRows,
    options: BatchLoaderOptions,
    resume?: BatchLoaderState,
  ) {
    if (!Number.isInteger(options.batchSize) || options.batchSize <= 0)
      throw new RangeError(`batch size ${options.batchSize} is not a positive integer`);
    if (data.rowCount === 0) throw new DataFormatError('no training rows: the data is empty');
    this.batchSize = options.batchSize;
    if (resume === undefined) {
      this.shuffle = options.shuffle ?? true;
      this.rng = new Rng(options.seed, DATA_RNG_STREAMS.shuffle);
      this.epochValue = 0;
      this.index = 0;
    } else {
      this.checkResumable(resume);
      this.shuffle = resume.shuffle;
      this.rng = Rng.fromState(resume.rng);
      this.epochValue = resume.epoch;
      this.index = resume.index;
    }
    this.drawOrder();
  }

  /** The epoch of the next row, 0-based. */
  get epoch(): number {
    return this.epochValue;
  }

  /** Epochs done, fractional (for progress reports). */
  get epochProgress(): number {
    return this.epochValue + this.index / this.data.rowCount;
  }

  /** The next batch of batchSize rows. */
  next(): DataBatch {
    const rows: number[] = [];
    while (rows.length < this.batchSize) {
      if (this.index === this.order.length) {
        this.epochValue++;
        this.index = 0;
        this.drawOrder();
      }
      rows.push(this.order[this.index++]!);
    }
    return gatherBatch(this.data, rows);
  }

  /** The position before the next batch; JSON-safe. */
  state(): BatchLoaderState {
    return {
      epoch: this.epochValue,
      index: this.index,
      rng: this.epochStart,
      shuffle: this.shuffle,
      rowCount: this.data.rowCount,
      seqLen: this.data.seqLen,
      batchSize: this.batchSize,
      dataFingerprint: this.data.fingerprint(),
    };
  }

  private drawOrder(): void {
    this.epochStart = this.rng.getState();
    const order = Array.from({ length: this.data.rowCount }, (_, i) => i);
    this.order = this.shuffle ? this.rng.shuffle(order) : order;
  }

  private checkResumable(s: BatchLoaderState): void {
    const differences: string[] = [];
    if (s.rowCount !== this.data.rowCount)
      differences.push(`${s.rowCount} rows then, ${this.data.rowCount} now`);
    if (s.seqLen !== this.data.seqLen)
      differences.push(`sequence length ${s.seqLen} then, ${this.data.seqLen} now`);
    if (s.batchSize !== this.batchSize)
      differences.push(`batch size ${s.batchSize} then, ${this.batchSize} now`);
    if (differences.length === 0 && s.dataFingerprint !== this.data.fingerprint())
      differences.push('the same shape but different tokens (another file, tokenizer or packing?)');
    if (differences.length > 0)
      throw new DataFormatError(`cannot resume the data loader: ${differences.join('; ')}`);
    if (
      !Number.isInteger(s.epoch) ||
      s.epoch < 0 ||
      !Number.isInteger(s.index) ||
      s.index < 0 ||
      s.index > s.rowCount
    )
      throw new DataFormatError(
        `cannot resume the data loader: bad position (epoch ${s.epoch}, index ${s.index})`,
      );
  }
}
