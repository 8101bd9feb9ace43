// Typed views into shared memory of a tensor's arrays, and the copies that work for any tensor
// (including one split over several memories).
import { halfToFloat } from './half.js';
import { f32View, u16View, type Dtype, type Segment, type TensorRecord } from './tensors.js';

/** Views of one segment (elements [start, start + length) of a tensor). */
export interface SegmentViews {
  start: number;
  length: number;
  grad: Float32Array | Uint16Array;
  param: Float32Array | null;
  out: Float32Array | Uint16Array | null;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** The fp16 copy of the params (half bits), or null unless registered with `paramF16: true`. */
  paramF16: Uint16Array | null;
}

export type ArrayField = 'grad' | 'param' | 'out' | 'expAvg' | 'expAvgSq' | 'paramF16';

function only(r: TensorRecord, what: string): Segment | undefined {
  if (r.segments.length > 1)
    throw new RangeError(
      `${what}: tensor "${r.name}" spans ${r.segments.length} shared memories; use segments("${r.name}"), ` +
        'setGrad() or readParam()/readOut()',
    );
  return r.segments[0];
}

/** The one fp32 view of `field` (empty for an empty tensor); throws when the tensor is split. */
export function singleF32(r: TensorRecord, field: ArrayField, what: string): Float32Array {
  const s = only(r, what);
  return s ? f32View(s, s[field]) : new Float32Array(0);
}

/** The one fp16 (half bits) view of `field`; throws when the tensor is split. */
export function singleU16(r: TensorRecord, field: ArrayField, what: string): Uint16Array {
  const s = only(r, what);
  return s ? u16View(s, s[field]) : new Uint16Array(0);
}

function typed(d: Dtype, s: Segment, at: number): Float32Array | Uint16Array {
  return d === 'f16' ? u16View(s, at) : f32View(s, at);
}

export function segmentViews(r: TensorRecord): SegmentViews[] {
  return r.segments.map((s) => ({
    start: s.start,
    length: s.length,
    grad: typed(r.gradDtype, s, s.grad),
    param: r.kind === 'param' ? f32View(s, s.param) : null,
    out: r.kind === 'stepOnly' ? typed(r.outDtype, s, s.out) : null,
    expAvg: f32View(s, s.expAvg),
    expAvgSq: f32View(s, s.expAvgSq),
    paramF16: r.paramF16 ? u16View(s, s.paramF16) : null,
  }));
}

/** Copy a whole gradient in: a Float32Array for 'f32' gradients, a Uint16Array of half bits for 'f16'. */
export function copyGradIn(r: TensorRecord, src: Float32Array | Uint16Array, what: string): void {
  const want = r.gradDtype === 'f16' ? Uint16Array : Float32Array;
  if (!(src instanceof want))
    throw new TypeError(`${what}: tensor "${r.name}" has ${r.gradDtype} gradients, pass a ${want.name}`);
  if (src.length !== r.length)
    throw new RangeError(`${what}: got ${src.length} elements, tensor "${r.name}" has ${r.length}`);
  for (const v of segmentViews(r)) v.grad.set(src.subarray(v.start, v.start + v.length));
}

/** Copy the fp16 copy of the params (half bits) out of every segment. */
export function copyParamF16Out(r: TensorRecord, dst: Uint16Array | undefined, what: string): Uint16Array {
  if (dst !== undefined && (!(dst instanceof Uint16Array) || dst.length !== r.length))
    throw new RangeError(`${what}: dst must be a Uint16Array of ${r.length} elements`);
  const out = dst ?? new Uint16Array(r.length);
  for (const v of segmentViews(r)) out.set(v.paramF16!, v.start);
  return out;
}

function destination(r: TensorRecord, dst: Float32Array | undefined, what: string): Float32Array {
  if (dst === undefined) return new Float32Array(r.length);
  if (!(dst instanceof Float32Array) || dst.length !== r.length)
    throw new RangeError(`${what}: dst must be a Float32Array of ${r.length} elements`);
  return dst;
}

/** Copy the params (or, for 'out', the step output converted to fp32) out of every segment. */
export function copyOut(
  r: TensorRecord,
  field: 'param' | 'out',
  dst: Float32Array | undefined,
  what: string,
): Float32Array {
  const out = destination(r, dst, what);
  for (const v of segmentViews(r)) {
    const src = v[field]!;
    if (src instanceof Float32Array) out.set(src, v.start);
    else for (let i = 0; i < v.length; i++) out[v.start + i] = halfToFloat(src[i]!);
  }
  return out;
}
