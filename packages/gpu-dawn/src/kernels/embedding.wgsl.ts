// Embedding gather (token ids -> rows of an f32 or f16-stored table, plus optional learned position
// embeddings) and its deterministic scatter-add backward.
//
// Backward, without float atomics (their summation order, hence the result, would vary run to run):
//   1. rank:    every token t gets its place in the stable order by (id, t); sorted[place] = t. The place
//               is counted directly (tokens with a smaller id, plus tokens with the same id and a smaller
//               index), with ids staged through workgroup memory: O(tokens^2) compares, which for the
//               few thousand to ~64k tokens of a training step is microseconds to a few ms on a large GPU
//               and needs no multi-pass sort. A radix sort would replace it for far larger batches.
//   2. segment: the first token of each run of equal ids in sorted order owns that table row: it sums
//               the run's dy rows in token order and adds the sum to the row, one column per invocation.
//               Every gradient row is written by exactly one invocation per column, always in the same
//               order, so the result is bitwise reproducible and independent of the vocabulary size
//               (rows of ids that do not occur are never touched: cleared beforehand or kept when
//               accumulating).
import { ROW_WG, WGSL_NAN_FN, loadStored, storedArray, type StoredFloat } from './rows.js';

export type EmbeddingPositionMode = 'none' | 'range' | 'ids';

/** out[t, c] = table[ids[t], c] (+ positionTable[pos(t), c]); NaN for an id or position out of range. */
export function embeddingForwardWgsl(
  tableDtype: StoredFloat,
  positionMode: EmbeddingPositionMode,
  positionTableDtype: StoredFloat,
): string {
  let binding = 0;
  const bind = (decl: string) => `@group(0) @binding(${binding++}) ${decl};`;
  const withPositions = positionMode !== 'none';
  const positionExpr = positionMode === 'ids' ? 'positionIds[t]' : 'i32(p.offset + t % p.sequenceLength)';
  return /* wgsl */ `
struct Params {
  tokens: u32, cols: u32, vocab: u32, rowsX: u32,
  offset: u32, sequenceLength: u32, maxPositions: u32, firstRow: u32,
  blockRows: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}
${bind('var<storage, read> ids: array<i32>')}
${bind(`var<storage, read> table: ${storedArray(tableDtype)}`)}
${withPositions ? bind(`var<storage, read> positionTable: ${storedArray(positionTableDtype)}`) : ''}
${positionMode === 'ids' ? bind('var<storage, read> positionIds: array<i32>') : ''}
${bind('var<storage, read_write> out: array<f32>')}
${bind('var<uniform> p: Params')}
${WGSL_NAN_FN}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y * p.rowsX + wid.x;
  let c = wid.z * ${ROW_WG}u + lid;
  if (t >= p.tokens || c >= p.cols) { return; }
  let id = ids[t];
  // The table is bound as rows firstRow .. firstRow + blockRows (all of it unless it exceeds a binding):
  // other blocks write the other ids; an id outside the vocabulary becomes NaN (written with the first
  // block), so it shows in the loss instead of reading another row.
  let inVocab = id >= 0 && u32(id) < p.vocab;
  let local = u32(id) - p.firstRow;
  if (inVocab && (u32(id) < p.firstRow || local >= p.blockRows)) { return; }
  if (!inVocab && p.firstRow != 0u) { return; }
  var v = quietNan();
  if (inVocab) { v = ${loadStored('table', tableDtype, 'local * p.cols + c')}; }
  ${
    withPositions
      ? `let pos = ${positionExpr};
  if (pos >= 0 && u32(pos) < p.maxPositions) {
    v += ${loadStored('positionTable', positionTableDtype, 'u32(pos) * p.cols + c')};
  } else {
    v = quietNan();
  }`
      : ''
  }
  out[t * p.cols + c] = v;
}
`;
}

/** Backward helper: position ids of a range, pos[t] = offset + t % sequenceLength. */
export const embeddingRangeIdsWgsl = /* wgsl */ `
struct Params { tokens: u32, offset: u32, sequenceLength: u32, rowStride: u32 }
@group(0) @binding(0) var<storage, read_write> positionIds: array<i32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y * p.rowStride + gid.x;
  if (t >= p.tokens) { return; }
  positionIds[t] = i32(p.offset + t % p.sequenceLength);
}
`;

/** Backward step 1: sorted[place of t in the stable (id, t) order] = t. */
export const embeddingRankWgsl = /* wgsl */ `
struct Params { tokens: u32, rowStride: u32 }
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read_write> sorted: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
var<workgroup> tile: array<i32, ${ROW_WG}>;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = gid.y * p.rowStride + gid.x;
  let valid = t < p.tokens;
  // Invocations past the end still help stage tiles: every invocation must reach every barrier.
  let mine = ids[min(t, p.tokens - 1u)];
  var place = 0u;
  let tiles = (p.tokens + ${ROW_WG - 1}u) / ${ROW_WG}u;
  for (var k = 0u; k < tiles; k++) {
    let o = k * ${ROW_WG}u + lid;
    tile[lid] = ids[min(o, p.tokens - 1u)];
    workgroupBarrier();
    let count = min(${ROW_WG}u, p.tokens - k * ${ROW_WG}u);
    for (var j = 0u; j < count; j++) {
      let other = tile[j];
      let before = other < mine || (other == mine && k * ${ROW_WG}u + j < t);
      place += select(0u, 1u, before);
    }
    workgroupBarrier();
  }
  if (valid) { sorted[place] = t; }
}
`;

/**
 * Backward step 2: the first token of each run of equal ids adds the run's dy rows (f32, or f16 read as
 * f32) to its table row, summing in f32.
 */
export function embeddingSegmentSumWgsl(dyDtype: StoredFloat = 'f32'): string {
  return /* wgsl */ `
struct Params {
  tokens: u32, cols: u32, vocab: u32, rowsX: u32, paddingIdx: i32, hasPadding: u32, firstRow: u32, blockRows: u32,
}
@group(0) @binding(0) var<storage, read> dy: ${storedArray(dyDtype)};
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> sorted: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = wid.y * p.rowsX + wid.x;
  let c = wid.z * ${ROW_WG}u + lid;
  if (j >= p.tokens || c >= p.cols) { return; }
  let id = ids[sorted[j]];
  if (j > 0u && ids[sorted[j - 1u]] == id) { return; }
  // Ids outside the table get no gradient (the forward made their rows NaN); neither does padding_idx,
  // like torch.nn.Embedding(padding_idx=...).
  if (id < 0 || u32(id) >= p.vocab || (p.hasPadding != 0u && id == p.paddingIdx)) { return; }
  // the gradient is bound as rows firstRow .. firstRow + blockRows: other ids belong to other passes
  if (u32(id) < p.firstRow || u32(id) - p.firstRow >= p.blockRows) { return; }
  var acc = 0.0;
  for (var k = j; k < p.tokens; k++) {
    let t = sorted[k];
    if (ids[t] != id) { break; }
    acc += ${loadStored('dy', dyDtype, 't * p.cols + c')};
  }
  let o = (u32(id) - p.firstRow) * p.cols + c;
  grad[o] = grad[o] + acc;
}
`;
}
