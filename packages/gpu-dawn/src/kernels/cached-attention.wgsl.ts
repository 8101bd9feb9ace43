// Causal attention of a few new query rows against a key/value cache (text generation with a KV cache):
// query row i sits at position past + i and attends to cached keys 0 ..= past + i. One workgroup per
// (query row, head) walks the keys in blocks of CACHED_ATTENTION_WG: each thread scores one key of the
// block into workgroup memory, then every thread folds the block into the online softmax and into the
// output dimensions it owns (d = lid, lid + WG, ...), so no thread keeps a head_dim-long vector of its own.

export const CACHED_ATTENTION_WG = 64;

/** WGSL for head_dim `headDim` (a compile-time constant: the per-thread output slice has a fixed size). */
export function cachedAttentionWgsl(headDim: number): string {
  const perThread = Math.ceil(headDim / CACHED_ATTENTION_WG);
  return /* wgsl */ `
struct Params {
  rows: u32, past: u32, nHeads: u32, groupSize: u32,
  nKvHeads: u32, scale: f32, _p0: u32, _p1: u32,
}
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kCache: array<f32>;
@group(0) @binding(2) var<storage, read> vCache: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = ${CACHED_ATTENTION_WG}u;
const D: u32 = ${headDim}u;
const PER_THREAD: u32 = ${perThread}u;
var<workgroup> scores: array<f32, ${CACHED_ATTENTION_WG}>;

@compute @workgroup_size(${CACHED_ATTENTION_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  let h = wid.y;
  let hk = h / p.groupSize;
  let keys = p.past + row + 1u;
  let qBase = (row * p.nHeads + h) * D;
  var runMax = -3.4028234e38;
  var runSum = 0.0;
  var acc: array<f32, ${perThread}>;
  for (var e = 0u; e < PER_THREAD; e++) { acc[e] = 0.0; }
  for (var k0 = 0u; k0 < keys; k0 += WG) {
    let j = k0 + lid;
    var s = -3.4028234e38;
    if (j < keys) {
      let kBase = (j * p.nKvHeads + hk) * D;
      var dot = 0.0;
      for (var d = 0u; d < D; d++) { dot += q[qBase + d] * kCache[kBase + d]; }
      s = dot * p.scale;
    }
    scores[lid] = s;
    workgroupBarrier();
    let n = min(WG, keys - k0);
    var blockMax = runMax;
    for (var t = 0u; t < n; t++) { blockMax = max(blockMax, scores[t]); }
    let rescale = exp(runMax - blockMax);
    runSum *= rescale;
    for (var e = 0u; e < PER_THREAD; e++) { acc[e] *= rescale; }
    for (var t = 0u; t < n; t++) {
      let w = exp(scores[t] - blockMax);
      runSum += w;
      let vBase = ((k0 + t) * p.nKvHeads + hk) * D;
      for (var e = 0u; e < PER_THREAD; e++) {
        let d = lid + e * WG;
        if (d < D) { acc[e] += w * vCache[vBase + d]; }
      }
    }
    runMax = blockMax;
    workgroupBarrier();
  }
  for (var e = 0u; e < PER_THREAD; e++) {
    let d = lid + e * WG;
    if (d < D) { o[qBase + d] = acc[e] / runSum; }
  }
}
`;
}
