// Pieces shared by the row-wise kernels (norms, RoPE, embedding, cross-entropy): launch grids with one
// workgroup per row, loads of f16-stored weights without the shader-f16 feature, token positions, and
// argument checks whose errors name the tensor.
import type { DType } from '../dtype.js';
import type { GpuRuntime } from '../runtime.js';
import { Tensor, type Shape } from '../tensor.js';

/** Threads per workgroup of every row kernel here (a power of two: the tree reductions rely on it). */
export const ROW_WG = 256;

export interface RowGrid {
  /** [x, y, z]: rows spread over x and y (row = wid.y * rowsX + wid.x), z free for column tiles. */
  workgroups: [number, number, number];
  rowsX: number;
}

/** One workgroup per row, wrapping into y past the per-dimension limit (65535 on most adapters). */
export function rowGrid(gpu: GpuRuntime, rows: number, zGroups = 1): RowGrid {
  const max = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  if (zGroups > max) throw new Error(`rowGrid: ${zGroups} column tiles exceed ${max} per dimension`);
  const rowsX = Math.max(1, Math.min(rows, max));
  return { workgroups: [rows === 0 ? 0 : rowsX, Math.ceil(rows / rowsX), zGroups], rowsX };
}

/** Storage dtypes of weights and tables read by these kernels. */
export type StoredFloat = 'f32' | 'f16';

/**
 * WGSL element type of a stored-float binding. f16 data is bound as array<u32> and unpacked with
 * unpack2x16float, so f16 storage works without the shader-f16 feature (hidden on NVIDIA without a
 * Dawn toggle) and math stays f32.
 */
export function storedArray(dtype: StoredFloat): string {
  return dtype === 'f16' ? 'array<u32>' : 'array<f32>';
}

/** WGSL expression loading element `index` (a u32 expression) of a stored-float array as f32. */
export function loadStored(name: string, dtype: StoredFloat, index: string): string {
  return dtype === 'f16'
    ? `unpack2x16float(${name}[(${index}) >> 1u])[(${index}) & 1u]`
    : `${name}[${index}]`;
}

/** A runtime quiet NaN (a const-expression NaN is a WGSL shader-creation error). */
export const WGSL_NAN_FN = /* wgsl */ `
fn quietNan() -> f32 {
  var bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}`;

/**
 * Positions of tokens laid out as [batch, sequence] flattened: `pos(t) = offset + t % sequenceLength`
 * (sequenceLength defaults to all tokens, i.e. one sequence), or an i32 tensor of position ids [tokens]
 * (left padding, packed sequences).
 */
export interface PositionRange {
  offset?: number;
  sequenceLength?: number;
}
export type TokenPositions = Tensor | PositionRange;

export function isPositionTensor(p: TokenPositions): p is Tensor {
  return p instanceof Tensor;
}

/** Resolve a range to (offset, sequence length) for `tokens` tokens; throws on invalid values. */
export function resolveRange(op: string, range: PositionRange, tokens: number): [number, number] {
  const offset = range.offset ?? 0;
  const seq = range.sequenceLength ?? Math.max(1, tokens);
  if (!Number.isInteger(offset) || offset < 0)
    throw new Error(`${op}: position offset must be a non-negative integer, got ${offset}`);
  if (!Number.isInteger(seq) || seq < 1)
    throw new Error(`${op}: sequenceLength must be a positive integer, got ${seq}`);
  return [offset, seq];
}

/** Host positions for references and tests. */
export function positionsOf(range: PositionRange, tokens: number): Int32Array {
  const [offset, seq] = resolveRange('positionsOf', range, tokens);
  const out = new Int32Array(tokens);
  for (let t = 0; t < tokens; t++) out[t] = offset + (t % seq);
  return out;
}

/** Throw `op: name must be <dtype> [shape], got <tensor>` unless t matches. `shape` entries may be -1 (any). */
export function checkTensor(
  op: string,
  name: string,
  t: Tensor,
  dtypes: readonly DType[],
  shape?: Shape,
): void {
  const dtypeOk = dtypes.includes(t.dtype);
  const shapeOk =
    !shape || (shape.length === t.shape.length && shape.every((d, i) => d === -1 || d === t.shape[i]));
  if (!dtypeOk || !shapeOk) {
    const want = shape ? ` [${shape.map((d) => (d === -1 ? '*' : d)).join(', ')}]` : '';
    throw new Error(`${op}: ${name} must be ${dtypes.join(' or ')}${want}, got ${t}`);
  }
}

/** Throw unless no two of the tensors share storage bytes (WebGPU forbids aliasing a writable binding). */
export function checkDisjoint(op: string, tensors: Record<string, Tensor | undefined>): void {
  const list = Object.entries(tensors).filter((e): e is [string, Tensor] => e[1] !== undefined);
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      const [na, a] = list[i]!;
      const [nb, b] = list[j]!;
      if (
        a.buffer === b.buffer &&
        a.byteOffset < b.byteOffset + b.bindingSize &&
        b.byteOffset < a.byteOffset + a.bindingSize
      ) {
        throw new Error(`${op}: ${na} and ${nb} share storage; pass separate tensors`);
      }
    }
  }
}
