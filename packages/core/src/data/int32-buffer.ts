// An Int32Array that grows by doubling, so token streams of unknown length are stored compactly
// (4 bytes a token) instead of as JS number arrays.
export class GrowableInt32 {
  private data: Int32Array;
  private size = 0;

  constructor(initialCapacity = 1024) {
    this.data = new Int32Array(Math.max(1, initialCapacity));
  }

  get length(): number {
    return this.size;
  }

  push(value: number): void {
    if (this.size === this.data.length) this.grow(this.size + 1);
    this.data[this.size++] = value;
  }

  append(values: ArrayLike<number>): void {
    if (this.size + values.length > this.data.length) this.grow(this.size + values.length);
    for (let i = 0; i < values.length; i++) this.data[this.size + i] = values[i]!;
    this.size += values.length;
  }

  /** Appends `count` copies of `value`. */
  fill(value: number, count: number): void {
    if (this.size + count > this.data.length) this.grow(this.size + count);
    this.data.fill(value, this.size, this.size + count);
    this.size += count;
  }

  /** The values as an array of exactly the right length (a copy when the buffer has spare room). */
  toInt32Array(): Int32Array {
    return this.size === this.data.length ? this.data : this.data.slice(0, this.size);
  }

  private grow(needed: number): void {
    let capacity = this.data.length;
    while (capacity < needed) capacity *= 2;
    const grown = new Int32Array(capacity);
    grown.set(this.data.subarray(0, this.size));
    this.data = grown;
  }
}
