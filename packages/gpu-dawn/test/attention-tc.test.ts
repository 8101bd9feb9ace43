// Tensor-core flash attention (forward in both modes, dQ, dK/dV) on emulated subgroup matrices, against the
// float64 reference: f16 q/k/v/dO, odd T crossing the query and key blocks and the causal diagonal, GQA,
// NaN-poisoned outputs; plus the plan (what runs where) and tile checks. Real tensor cores are checked by
// bench/tc-tune.mjs on a GPU. Each emulated pipeline costs 10-40 s of llvmpipe compilation on a cold
// shader cache: two head dims, five pipelines each.
import { describe, expect, it } from 'vitest';
import {
  attentionBackward,
  attentionForward,
  attentionPlan,
  f16Round,
  type AttentionOptions,
  type GpuRuntime,
  type Tensor,
} from '../src/index.js';
import {
  attentionBackwardReference,
  attentionForwardReference,
  type AttentionShape,
} from '../src/reference.js';
import { expectClose, makeRng, NAN_BITS, randn, useGpu } from './harness.js';

const gpu = useGpu();
const F16_NAN_PAIR = 0x7e007e00;

function inputs(s: AttentionShape, seed: number) {
  const rng = makeRng(seed);
  const qn = s.batch * s.seqLen * s.nHeads * s.headDim;
  const kn = s.batch * s.seqLen * s.nKvHeads * s.headDim;
  const r = (n: number, std: number) => randn(rng, n, std).map(f16Round);
  // q with std 2 makes some rows peaky, so the running max moves and the lazy rescale triggers.
  return { q: r(qn, 2), k: r(kn, 1), v: r(kn, 1), dO: r(qn, 1) };
}

function upload(g: GpuRuntime, s: AttentionShape, x: ReturnType<typeof inputs>) {
  const qs = [s.batch, s.seqLen, s.nHeads, s.headDim];
  const ks = [s.batch, s.seqLen, s.nKvHeads, s.headDim];
  const t = {
    q: g.upload('q', 'f16', qs, x.q),
    k: g.upload('k', 'f16', ks, x.k),
    v: g.upload('v', 'f16', ks, x.v),
    dO: g.upload('dO', 'f16', qs, x.dO),
    o: g.tensor('o', 'f16', qs, 'workspace'),
    lse: g.tensor('lse', 'f32', [s.batch, s.nHeads, s.seqLen], 'workspace'),
    dq: g.tensor('dq', 'f16', qs, 'workspace'),
    dk: g.tensor('dk', 'f16', ks, 'workspace'),
    dv: g.tensor('dv', 'f16', ks, 'workspace'),
  };
  for (const y of [t.o, t.dq, t.dk, t.dv]) g.fill32(y, F16_NAN_PAIR);
  g.fill32(t.lse, NAN_BITS);
  return t;
}
const release = (t: Record<string, Tensor>) => Object.values(t).forEach((y) => y.release());

const tiles = (forwardMode: 'online' | 'two-pass', bufferView: boolean): AttentionOptions => ({
  emulateSubgroupMatrix: true,
  tc: {
    forwardMode,
    forward: { subgroups: 2, keysPerBlock: 16 },
    dq: { subgroups: 2, keysPerBlock: 16 },
    dkdv: { subgroups: 2, rowsPerBlock: 16 },
    bufferView,
  },
});

describe('tensor-core attention (emulated subgroup matrices)', () => {
  const cases: [string, AttentionShape, AttentionOptions][] = [
    [
      'online forward, buffer-view tiles, GQA 2, batch 2',
      { batch: 2, seqLen: 37, nHeads: 4, nKvHeads: 2, headDim: 16 },
      tiles('online', true),
    ],
    [
      'two-pass forward, f16 stores, GQA 3, head_dim 32',
      { batch: 1, seqLen: 21, nHeads: 3, nKvHeads: 1, headDim: 32 },
      tiles('two-pass', false),
    ],
  ];
  for (const [name, s, options] of cases) {
    it(`${name}: forward and backward match the float64 reference`, async () => {
      const g = gpu();
      const x = inputs(s, s.seqLen * 7 + s.headDim);
      const t = upload(g, s, x);
      attentionForward(g, t, options);
      attentionBackward(g, t, options);
      const [o, lse, dq, dk, dv] = await Promise.all([t.o, t.lse, t.dq, t.dk, t.dv].map((y) => g.read(y)));
      const ref = attentionForwardReference(x.q, x.k, x.v, s);
      const grads = attentionBackwardReference(x.q, x.k, x.v, x.dO, s);
      // P and dS are f16 for the products, outputs are f16: errors of a few f16 ulps of the row scale.
      expectClose(o!, ref.o, { rtol: 5e-3, atol: 3e-3 }, `${name} o`);
      expectClose(lse!, ref.lse, { rtol: 1e-5, atol: 1e-5 }, `${name} lse`);
      const tol = { rtol: 1e-2, atol: 1e-2 };
      expectClose(dq!, grads.dq, tol, `${name} dq`);
      expectClose(dk!, grads.dk, tol, `${name} dk`);
      expectClose(dv!, grads.dv, tol, `${name} dv`);
      release(t);
    }, 900_000); // five emulated pipelines: minutes of llvmpipe compilation on a cold shader cache
  }
});

describe('tensor-core attention plans', () => {
  const tensors = (g: GpuRuntime, dtype: 'f16' | 'f32', headDim: number) => ({
    q: g.tensor('q', dtype, [1, 8, 2, headDim], 'workspace'),
    k: g.tensor('k', dtype, [1, 8, 1, headDim], 'workspace'),
    v: g.tensor('v', dtype, [1, 8, 1, headDim], 'workspace'),
  });
  it('f16 tensors with head_dim % 16 take the tensor-core kernels; others the tiled ones, with the reason', () => {
    const g = gpu();
    const a = tensors(g, 'f16', 32);
    expect(attentionPlan(g, a.q, a.k, a.v, { emulateSubgroupMatrix: true }).path).toBe('subgroup-matrix');
    const b = tensors(g, 'f32', 32);
    const pb = attentionPlan(g, b.q, b.k, b.v);
    expect(pb.path).toBe('tiled');
    if (pb.path === 'tiled') expect(pb.reason).toMatch(/f32/);
    const c = tensors(g, 'f16', 24);
    const pc = attentionPlan(g, c.q, c.k, c.v);
    expect(pc.path).toBe('tiled');
    expect(() => attentionPlan(g, c.q, c.k, c.v, { emulateSubgroupMatrix: true })).toThrow(/head_dim 24/);
    for (const t of [a, b, c]) release(t);
  });
  it('rejects tiles that cannot stage Q or do not fit', () => {
    const g = gpu();
    const a = tensors(g, 'f16', 32);
    const bad = { emulateSubgroupMatrix: true, tc: { forward: { subgroups: 4, keysPerBlock: 16 } } };
    expect(() => attentionPlan(g, a.q, a.k, a.v, bad)).toThrow(/need keysPerBlock >= 32/);
    const huge = { emulateSubgroupMatrix: true, tc: { dkdv: { subgroups: 64, rowsPerBlock: 64 } } };
    expect(() => attentionPlan(g, a.q, a.k, a.v, huge)).toThrow(/exceed the adapter's workgroup limits/);
    release(a);
  });
});
