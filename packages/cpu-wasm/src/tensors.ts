// The optimizer's tensors: names, kinds, dtypes, and where each one's arrays live. A tensor that does
// not fit in one shared memory is split into segments, each with all of its arrays in one memory
// (a kernel instance sees only its own memory).
import type { MemoryArena, MemorySet } from './arena.js';

export type Dtype = 'f32' | 'f16';
/** 'param': classic AdamW on fp32 params. 'stepOnly': m, v and a step output, no params (LSP subspace). */
export type TensorKind = 'param' | 'stepOnly';

export const DTYPE_BYTES: Record<Dtype, number> = { f32: 4, f16: 2 };

/** Segments are multiples of this many elements when a memory holds at least one sum-of-squares block. */
export const SEGMENT_GRANULE = 32;

export interface Segment {
  arena: MemoryArena;
  /** First element of the tensor held here. */
  start: number;
  length: number;
  /** Byte offsets in arena.memory; -1 where the kind has no such array. */
  param: number;
  grad: number;
  expAvg: number;
  expAvgSq: number;
  out: number;
  /** The fp16 copy of the params ('param' tensors registered with paramF16). */
  paramF16: number;
}

export interface TensorRecord {
  readonly name: string;
  readonly kind: TensorKind;
  readonly group: string;
  readonly length: number;
  readonly gradDtype: Dtype;
  /** Step output dtype ('stepOnly' only). */
  readonly outDtype: Dtype;
  /** Whether each step also writes the new params as fp16 ('param' only). */
  readonly paramF16: boolean;
  /** Completed AdamW steps of this tensor (bias correction uses its own count). */
  steps: number;
  readonly segments: readonly Segment[];
}

export interface TensorSpec {
  name: string;
  kind: TensorKind;
  group: string;
  length: number;
  gradDtype: Dtype;
  outDtype: Dtype;
  paramF16: boolean;
}

type ArrayBytes = [number, number, number, number, number, number];

/** Bytes per element of each array of a tensor, in allocation order: param, grad, m, v, out, paramF16. */
function arrayBytes(spec: TensorSpec): ArrayBytes {
  const isParam = spec.kind === 'param';
  return [
    isParam ? 4 : 0,
    DTYPE_BYTES[spec.gradDtype],
    4,
    4,
    isParam ? 0 : DTYPE_BYTES[spec.outDtype],
    isParam && spec.paramF16 ? 2 : 0,
  ];
}

export class TensorRegistry {
  private readonly byName = new Map<string, TensorRecord>();

  constructor(
    private readonly memories: MemorySet,
    /** Preferred segment multiple (the sum-of-squares block), used when a memory is that large. */
    private readonly blockElements: number,
  ) {}

  get size(): number {
    return this.byName.size;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** All tensors in registration order. */
  all(): TensorRecord[] {
    return [...this.byName.values()];
  }

  get(name: string): TensorRecord {
    const r = this.byName.get(name);
    if (!r) throw new RangeError(`unknown tensor "${name}"${this.knownHint()}`);
    return r;
  }

  /** The named tensors (default: all) in registration order; unknown or repeated names are errors. */
  select(names?: readonly string[]): TensorRecord[] {
    if (names === undefined) return this.all();
    if (!Array.isArray(names)) throw new TypeError('names must be an array of tensor names');
    const wanted = new Set<string>();
    const unknown: string[] = [];
    for (const n of names) {
      if (wanted.has(n)) throw new RangeError(`tensor "${n}" is named twice`);
      wanted.add(n);
      if (!this.byName.has(n)) unknown.push(n);
    }
    if (unknown.length > 0)
      throw new RangeError(`unknown tensor(s) ${unknown.map((n) => `"${n}"`).join(', ')}${this.knownHint()}`);
    return this.all().filter((r) => wanted.has(r.name));
  }

  add(spec: TensorSpec): TensorRecord {
    if (typeof spec.name !== 'string' || spec.name.length === 0)
      throw new TypeError('a tensor name must be a non-empty string');
    if (this.byName.has(spec.name)) throw new RangeError(`tensor "${spec.name}" is already registered`);
    if (!Number.isSafeInteger(spec.length) || spec.length < 0)
      throw new RangeError(
        `tensor "${spec.name}": length must be a non-negative integer, got ${spec.length}`,
      );
    for (const d of [spec.gradDtype, spec.outDtype])
      if (d !== 'f32' && d !== 'f16')
        throw new TypeError(`tensor "${spec.name}": dtype must be 'f32' or 'f16'`);
    if (typeof spec.paramF16 !== 'boolean')
      throw new TypeError(`tensor "${spec.name}": paramF16 must be true or false`);
    if (spec.paramF16 && spec.kind !== 'param')
      throw new TypeError(
        `tensor "${spec.name}": paramF16 is for param tensors (step-only ones have no params)`,
      );
    const record: TensorRecord = { ...spec, steps: 0, segments: this.place(spec) };
    this.byName.set(spec.name, record);
    return record;
  }

  private place(spec: TensorSpec): Segment[] {
    const bytes = arrayBytes(spec);
    const present = bytes.filter((b) => b > 0);
    let max = this.memories.maxElements(present, this.blockElements);
    if (max === 0) max = this.memories.maxElements(present, SEGMENT_GRANULE);
    if (max === 0 && spec.length > 0)
      throw new RangeError(`tensor "${spec.name}": memoryCapBytes is too small to hold any of it`);
    const segments: Segment[] = [];
    for (let start = 0; start < spec.length; start += max) {
      const length = Math.min(max, spec.length - start);
      const sizes = bytes.filter((b) => b > 0).map((b) => b * length);
      const { arena, offsets } = this.memories.alloc(sizes);
      let k = 0;
      const at = (b: number): number => (b > 0 ? offsets[k++]! : -1);
      const [param, grad, expAvg, expAvgSq, out, paramF16] = bytes.map(at) as ArrayBytes;
      segments.push({ arena, start, length, param, grad, expAvg, expAvgSq, out, paramF16 });
    }
    return segments;
  }

  private knownHint(): string {
    const names = [...this.byName.keys()];
    if (names.length === 0) return ' (no tensors are registered)';
    const shown = names.slice(0, 10).map((n) => `"${n}"`);
    return ` (registered: ${shown.join(', ')}${names.length > 10 ? `, ... ${names.length - 10} more` : ''})`;
  }
}

/** A typed view of one array of one segment (views stay valid as memories grow: they never detach). */
export function f32View(seg: Segment, byteOffset: number): Float32Array {
  return new Float32Array(seg.arena.memory.buffer, byteOffset, seg.length);
}

export function u16View(seg: Segment, byteOffset: number): Uint16Array {
  return new Uint16Array(seg.arena.memory.buffer, byteOffset, seg.length);
}

export function bytesView(seg: Segment, byteOffset: number, bytesPerElement: number): Uint8Array {
  return new Uint8Array(seg.arena.memory.buffer, byteOffset, seg.length * bytesPerElement);
}
