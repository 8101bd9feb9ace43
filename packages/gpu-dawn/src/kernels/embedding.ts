// Token embedding gather (i32 ids -> rows of an f32 or f16-stored table, plus GPT-2's learned position
// embeddings when given) and its deterministic scatter-add backward (see embedding.wgsl.ts for how the
// backward avoids float atomics), with float64 references.
import type { GpuRuntime } from '../runtime.js';
import type { Tensor } from '../tensor.js';
import { Params } from '../uniforms.js';
import {
  embeddingForwardWgsl,
  embeddingRangeIdsWgsl,
  embeddingRankWgsl,
  embeddingSegmentSumWgsl,
  type EmbeddingPositionMode,
} from './embedding.wgsl.js';
import { grid1d } from './grid.js';
import { rowBlocks } from '../binding-blocks.js';
import {
  ROW_WG,
  checkDisjoint,
  checkTensor,
  isPositionTensor,
  resolveRange,
  rowGrid,
  type PositionRange,
  type StoredFloat,
  type TokenPositions,
} from './rows.js';

export interface EmbeddingForwardArgs {
  /** i32, any shape; its element count is the number of tokens. */
  ids: Tensor;
  /** f32 or f16 [vocab, C]. */
  table: Tensor;
  /** f32 [..., C] with tokens x C elements (written). */
  out: Tensor;
  /** GPT-2's wpe: f32 or f16 [maxPositions, C], added to each token's row. */
  positionTable?: Tensor;
  /** Positions for positionTable (default: one sequence from 0). */
  positions?: TokenPositions;
}

export interface EmbeddingBackwardArgs {
  /** f32 or f16 [..., C], the gradient of the forward's output (summed in f32). */
  dy: Tensor;
  /** The rows each token used: token ids (i32 tensor), or for a position table, the positions. */
  ids: Tensor | PositionRange;
  /** f32 [rows, C]: zeroed then summed into, or added to with accumulate. */
  tableGrad: Tensor;
  /** Keep tableGrad's contents and add (gradient accumulation). Rows of absent ids are never touched. */
  accumulate?: boolean;
  /** Row that gets no gradient, like torch.nn.Embedding(padding_idx) (HF LLaMA sets pad_token_id). */
  paddingIdx?: number;
}

function tokenCount(
  op: string,
  t: Tensor,
  cols: number,
  name: string,
  tokens: number,
  dtypes: readonly StoredFloat[] = ['f32'],
): void {
  const last = t.shape[t.shape.length - 1];
  if (!dtypes.includes(t.dtype as StoredFloat) || last !== cols || t.numel !== tokens * cols)
    throw new Error(
      `${op}: ${name} must be ${dtypes.join(' or ')} [..., ${cols}] holding ${tokens} tokens, got ${t}`,
    );
}

/**
 * Record out[t] = table[ids[t]] (+ positionTable[pos(t)]); an id or position out of range gives NaN. A
 * table larger than one binding is read in row blocks (binding-blocks.ts).
 */
export function embeddingForward(gpu: GpuRuntime, a: EmbeddingForwardArgs): void {
  const op = 'embeddingForward';
  checkTensor(op, 'ids', a.ids, ['i32']);
  checkTensor(op, 'table', a.table, ['f32', 'f16'], [-1, -1]);
  const [vocab, cols] = a.table.shape as [number, number];
  const tokens = a.ids.numel;
  tokenCount(op, a.out, cols, 'out', tokens);
  let mode: EmbeddingPositionMode = 'none';
  let offset = 0;
  let sequenceLength = 1;
  let maxPositions = 0;
  if (a.positionTable) {
    checkTensor(op, 'positionTable', a.positionTable, ['f32', 'f16'], [-1, cols]);
    maxPositions = a.positionTable.shape[0]!;
    const positions = a.positions ?? {};
    if (isPositionTensor(positions)) {
      checkTensor(op, 'positions', positions, ['i32'], [tokens]);
      mode = 'ids';
    } else {
      [offset, sequenceLength] = resolveRange(op, positions, tokens);
      const last = offset + Math.min(tokens, sequenceLength) - 1;
      if (tokens > 0 && last >= maxPositions)
        throw new Error(`${op}: position ${last} is past positionTable's ${maxPositions} rows`);
      mode = 'range';
    }
  } else if (a.positions) {
    throw new Error(`${op}: positions given without a positionTable`);
  }
  checkDisjoint(op, { out: a.out, ids: a.ids, table: a.table, positionTable: a.positionTable });
  const tableDtype = a.table.dtype as StoredFloat;
  const posDtype = (a.positionTable?.dtype ?? 'f32') as StoredFloat;
  const g = rowGrid(gpu, tokens, Math.ceil(cols / ROW_WG));
  // a table larger than one binding is gathered from block by block: each writes its own ids' rows
  for (const block of rowBlocks(gpu, a.table)) {
    const bindings = [a.ids, block.tensor];
    if (a.positionTable) bindings.push(a.positionTable);
    if (mode === 'ids') bindings.push(a.positions as Tensor);
    bindings.push(a.out);
    gpu.dispatch({
      label: op,
      pipeline: gpu.pipeline(`embedding.forward.${tableDtype}.${mode}.${posDtype}`, () =>
        embeddingForwardWgsl(tableDtype, mode, posDtype),
      ),
      bindings,
      params: new Params()
        .u32(tokens)
        .u32(cols)
        .u32(vocab)
        .u32(g.rowsX)
        .u32(offset)
        .u32(sequenceLength)
        .u32(maxPositions)
        .u32(block.rowStart)
        .u32(block.rows)
        .u32(0)
        .u32(0)
        .u32(0),
      workgroups: g.workgroups,
    });
  }
}

/**
 * Record tableGrad[ids[t]] += dy[t] over all tokens t, deterministically (fixed token order per row); a
 * gradient larger than one binding is written in row blocks.
 */
export function embeddingBackward(gpu: GpuRuntime, a: EmbeddingBackwardArgs): void {
  const op = 'embeddingBackward';
  checkTensor(op, 'tableGrad', a.tableGrad, ['f32'], [-1, -1]);
  const [rows, cols] = a.tableGrad.shape as [number, number];
  let ids: Tensor;
  if (isPositionTensor(a.ids)) {
    checkTensor(op, 'ids', a.ids, ['i32']);
    ids = a.ids;
  } else {
    // Materialise the positions as ids so one code path serves token and position tables.
    const tokens = a.dy.numel / cols;
    if (!Number.isInteger(tokens))
      throw new Error(`${op}: dy must be f32 or f16 [..., ${cols}], got ${a.dy}`);
    const [offset, sequenceLength] = resolveRange(op, a.ids, tokens);
    ids = gpu.scratch(`${op}.positionIds`, 'i32', [tokens]);
    const g = grid1d(gpu, tokens, ROW_WG);
    gpu.dispatch({
      label: `${op}.positionIds`,
      pipeline: gpu.pipeline('embedding.backward.rangeIds', () => embeddingRangeIdsWgsl),
      bindings: [ids],
      params: new Params().u32(tokens).u32(offset).u32(sequenceLength).u32(g.rowStride),
      workgroups: g.workgroups,
    });
  }
  const tokens = ids.numel;
  tokenCount(op, a.dy, cols, 'dy', tokens, ['f32', 'f16']);
  if (a.paddingIdx !== undefined && !Number.isInteger(a.paddingIdx))
    throw new Error(`${op}: paddingIdx must be an integer, got ${a.paddingIdx}`);
  checkDisjoint(op, { dy: a.dy, ids, tableGrad: a.tableGrad });

  if (!a.accumulate) {
    gpu.commandEncoder().clearBuffer(a.tableGrad.buffer, a.tableGrad.byteOffset, a.tableGrad.bindingSize);
  }
  if (tokens === 0) return;
  const blocks = rowBlocks(gpu, a.tableGrad);
  const sorted = gpu.scratch(`${op}.sortedTokens`, 'u32', [tokens]);
  const g1 = grid1d(gpu, tokens, ROW_WG);
  gpu.dispatch({
    label: `${op}.rank`,
    pipeline: gpu.pipeline('embedding.backward.rank', () => embeddingRankWgsl),
    bindings: [ids, sorted],
    params: new Params().u32(tokens).u32(g1.rowStride),
    workgroups: g1.workgroups,
  });
  const dyDtype = a.dy.dtype as StoredFloat;
  const g2 = rowGrid(gpu, tokens, Math.ceil(cols / ROW_WG));
  // a gradient larger than one binding: one pass per row block, each adding its own ids' rows (the
  // sorted order is shared)
  for (const block of blocks)
    gpu.dispatch({
      label: `${op}.segmentSum`,
      pipeline: gpu.pipeline(`embedding.backward.segmentSum${dyDtype === 'f16' ? '.f16' : ''}`, () =>
        embeddingSegmentSumWgsl(dyDtype),
      ),
      bindings: [a.dy, ids, sorted, block.tensor],
      params: new Params()
        .u32(tokens)
        .u32(cols)
        .u32(rows)
        .u32(g2.rowsX)
        .i32(a.paddingIdx ?? 0)
        .u32(a.paddingIdx === undefined ? 0 : 1)
        .u32(block.rowStart)
        .u32(block.rows),
      workgroups: g2.workgroups,
    });
}

// ---- float64 references -------------------------------------------------------------------------

/** Float64 gather: out[t] = table[ids[t]] (+ positionTable[positions[t]]), NaN rows for ids out of range. */
export function embeddingReference(
  ids: ArrayLike<number>,
  table: ArrayLike<number>,
  cols: number,
  position?: { table: ArrayLike<number>; positions: ArrayLike<number> },
): Float64Array {
  const vocab = table.length / cols;
  const maxPositions = position ? position.table.length / cols : 0;
  const out = new Float64Array(ids.length * cols);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    const pos = position ? position.positions[t]! : 0;
    for (let c = 0; c < cols; c++) {
      let v = id >= 0 && id < vocab ? table[id * cols + c]! : Number.NaN;
      if (position) v += pos >= 0 && pos < maxPositions ? position.table[pos * cols + c]! : Number.NaN;
      out[t * cols + c] = v;
    }
  }
  return out;
}

/** Float64 scatter-add: grad[ids[t]] += dy[t]; ids out of range and paddingIdx get nothing. */
export function embeddingBackwardReference(
  dy: ArrayLike<number>,
  ids: ArrayLike<number>,
  rows: number,
  cols: number,
  paddingIdx?: number,
): Float64Array {
  const grad = new Float64Array(rows * cols);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    if (id < 0 || id >= rows || id === paddingIdx) continue;
    for (let c = 0; c < cols; c++) grad[id * cols + c] = grad[id * cols + c]! + dy[t * cols + c]!;
  }
  return grad;
}
