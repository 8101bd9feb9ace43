import { describe, expect, it } from 'vitest';
import {
  attentionBackward,
  attentionForward,
  f16Round,
  type AttentionTiles,
  type GpuRuntime,
  type Tensor,
} from '../src/index.js';
import {
  attentionBackwardReference,
  attentionForwardReference,
  chooseAttentionTiles,
  type AttentionShape,
} from '../src/reference.js';
import { expectClose, makeRng, NAN_BITS, randn, useGpu } from './harness.js';

const gpu = useGpu();

/** Two f16 NaNs per 32-bit word: NAN_BITS would leave every other f16 element as 0. */
const F16_NAN_PAIR = 0x7e007e00;

/** Small, unequal tiles so even T = 17 crosses several query and key blocks and the diagonal mid-block. */
const SMALL_TILES: AttentionTiles = {
  forward: { rowsPerBlock: 8, keysPerBlock: 4, threadRows: 4, threadCols: 2 },
  dq: { rowsPerBlock: 4, keysPerBlock: 8, threadRows: 2, threadCols: 4 },
  dkdv: { keysPerBlock: 4, rowsPerBlock: 8, threadKeys: 2, threadCols: 4 },
};

interface Case {
  shape: AttentionShape;
  tiles?: AttentionTiles;
  dtype?: 'f32' | 'f16';
}

const shapeOf = (batch: number, seqLen: number, nHeads: number, nKvHeads: number, headDim: number) => ({
  batch,
  seqLen,
  nHeads,
  nKvHeads,
  headDim,
});
const describeShape = (s: AttentionShape) =>
  `B${s.batch} T${s.seqLen} H${s.nHeads}/${s.nKvHeads} D${s.headDim}`;

interface Inputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  dO: Float32Array;
}

function makeInputs(s: AttentionShape, seed: number, dtype: 'f32' | 'f16'): Inputs {
  const rng = makeRng(seed);
  const qn = s.batch * s.seqLen * s.nHeads * s.headDim;
  const kn = s.batch * s.seqLen * s.nKvHeads * s.headDim;
  // q with std 2 makes some rows peaky (a few keys dominate), which exercises the running max.
  const inputs = { q: randn(rng, qn, 2), k: randn(rng, kn), v: randn(rng, kn), dO: randn(rng, qn) };
  if (dtype === 'f16') for (const a of Object.values(inputs)) a.set(a.map(f16Round)); // the values f16 storage holds
  return inputs;
}

interface GpuTensors {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  lse: Tensor;
  dO: Tensor;
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

function uploadAll(g: GpuRuntime, s: AttentionShape, x: Inputs, dtype: 'f32' | 'f16'): GpuTensors {
  const qShape = [s.batch, s.seqLen, s.nHeads, s.headDim];
  const kShape = [s.batch, s.seqLen, s.nKvHeads, s.headDim];
  const t: GpuTensors = {
    q: g.upload('q', dtype, qShape, x.q),
    k: g.upload('k', dtype, kShape, x.k),
    v: g.upload('v', dtype, kShape, x.v),
    dO: g.upload('dO', dtype, qShape, x.dO),
    o: g.tensor('o', dtype, qShape, 'workspace'),
    lse: g.tensor('lse', 'f32', [s.batch, s.nHeads, s.seqLen], 'workspace'),
    dq: g.tensor('dq', dtype, qShape, 'workspace'),
    dk: g.tensor('dk', dtype, kShape, 'workspace'),
    dv: g.tensor('dv', dtype, kShape, 'workspace'),
  };
  for (const out of [t.o, t.dq, t.dk, t.dv]) g.fill32(out, dtype === 'f16' ? F16_NAN_PAIR : NAN_BITS);
  g.fill32(t.lse, NAN_BITS);
  return t;
}

const releaseAll = (t: GpuTensors) => Object.values(t).forEach((x: Tensor) => x.release());

// Each distinct (dtype, head_dim, tiles) set compiles four pipelines, and llvmpipe's first dispatch of a
// pipeline costs seconds of CPU (cached afterwards in Mesa's shader cache): the cases share four sets.
// Small tiles exercise many blocks (and the causal diagonal crossing a block) at small T; the default
// tiles are the ones this adapter gets.
const CASES: Case[] = [
  // f32, head_dim 10 (scalar loads, last vec4 partly past head_dim, two vec4 per thread), small tiles
  { shape: shapeOf(1, 1, 1, 1, 10), tiles: SMALL_TILES },
  { shape: shapeOf(1, 5, 3, 3, 10), tiles: SMALL_TILES },
  { shape: shapeOf(2, 17, 4, 2, 10), tiles: SMALL_TILES },
  { shape: shapeOf(1, 33, 6, 2, 10), tiles: SMALL_TILES },
  { shape: shapeOf(2, 13, 5, 5, 10), tiles: SMALL_TILES },
  // f32, vec4 loads, the adapter's own tiles
  { shape: shapeOf(1, 33, 3, 1, 64) },
  { shape: shapeOf(2, 20, 4, 2, 64) },
  { shape: shapeOf(1, 19, 2, 2, 128) },
  // f16 storage (f32 math), vec4<f16> loads
  { shape: shapeOf(1, 21, 4, 2, 8), tiles: SMALL_TILES, dtype: 'f16' },
  { shape: shapeOf(2, 9, 3, 1, 8), tiles: SMALL_TILES, dtype: 'f16' },
];

describe('causal flash attention on the adapter Dawn finds', () => {
  for (const [n, c] of CASES.entries()) {
    const dtype = c.dtype ?? 'f32';
    const name = `${describeShape(c.shape)} ${dtype}${c.tiles ? ' small tiles' : ''}`;
    it(`forward and backward match the float64 reference: ${name}`, async (ctx) => {
      const g = gpu();
      if (dtype === 'f16' && !g.has('shader-f16')) ctx.skip();
      const s = c.shape;
      const x = makeInputs(s, 100 + n, dtype);
      const t = uploadAll(g, s, x, dtype);
      const options = c.tiles ? { tiles: c.tiles } : {};
      attentionForward(g, t, options);
      attentionBackward(g, t, options);
      const [o, lse, dq, dk, dv] = await Promise.all([t.o, t.lse, t.dq, t.dk, t.dv].map((y) => g.read(y)));
      await g.sync('attention test');

      const ref = attentionForwardReference(x.q, x.k, x.v, s);
      // f16 storage rounds o before the backward sees it; the reference backward uses exact o.
      const tol = dtype === 'f32' ? { rtol: 2e-4, atol: 2e-5 } : { rtol: 4e-3, atol: 2e-3 };
      expectClose(o!, ref.o, tol, `${name} o`);
      expectClose(lse!, ref.lse, { rtol: 1e-5, atol: 1e-5 }, `${name} lse`);
      const grads = attentionBackwardReference(x.q, x.k, x.v, x.dO, s);
      const gradTol = dtype === 'f32' ? { rtol: 5e-4, atol: 5e-5 } : { rtol: 1e-2, atol: 1e-2 };
      expectClose(dq!, grads.dq, gradTol, `${name} dq`);
      expectClose(dk!, grads.dk, gradTol, `${name} dk`);
      expectClose(dv!, grads.dv, gradTol, `${name} dv`);
      releaseAll(t);
    });
  }

  it('backward is bitwise deterministic with grouped-query heads', async () => {
    const g = gpu();
    const s = shapeOf(1, 17, 6, 2, 10);
    const x = makeInputs(s, 7, 'f32');
    const t = uploadAll(g, s, x, 'f32');
    attentionForward(g, t, { tiles: SMALL_TILES });
    attentionBackward(g, t, { tiles: SMALL_TILES });
    const first = await Promise.all([t.dq, t.dk, t.dv].map((y) => g.read(y)));
    for (const y of [t.dq, t.dk, t.dv]) g.fill32(y, NAN_BITS);
    // Second run with a caller-provided delta workspace instead of the scratch one.
    const delta = g.tensor('delta', 'f32', [s.batch, s.nHeads, s.seqLen], 'workspace');
    attentionBackward(g, { ...t, delta }, { tiles: SMALL_TILES });
    const second = await Promise.all([t.dq, t.dk, t.dv].map((y) => g.read(y)));
    for (let i = 0; i < 3; i++)
      expect(Buffer.from(second[i]!.buffer).equals(Buffer.from(first[i]!.buffer))).toBe(true);
    delta.release();
    releaseAll(t);
  });

  it('honours a custom scale', async () => {
    const g = gpu();
    const s = shapeOf(1, 9, 2, 1, 10);
    const x = makeInputs(s, 9, 'f32');
    const t = uploadAll(g, s, x, 'f32');
    const scale = 0.37;
    attentionForward(g, t, { scale, tiles: SMALL_TILES });
    attentionBackward(g, t, { scale, tiles: SMALL_TILES });
    const [o, lse, dq, dk, dv] = await Promise.all([t.o, t.lse, t.dq, t.dk, t.dv].map((y) => g.read(y)));
    const ref = attentionForwardReference(x.q, x.k, x.v, s, scale);
    const grads = attentionBackwardReference(x.q, x.k, x.v, x.dO, s, scale);
    expectClose(o!, ref.o, { rtol: 2e-4, atol: 2e-5 }, 'o');
    expectClose(lse!, ref.lse, { rtol: 1e-5, atol: 1e-5 }, 'lse');
    expectClose(dq!, grads.dq, { rtol: 5e-4, atol: 5e-5 }, 'dq');
    expectClose(dk!, grads.dk, { rtol: 5e-4, atol: 5e-5 }, 'dk');
    expectClose(dv!, grads.dv, { rtol: 5e-4, atol: 5e-5 }, 'dv');
    releaseAll(t);
  });
});

describe('attention backward against finite differences', () => {
  it('float64 reference gradients equal central differences of the reference forward', () => {
    const s = shapeOf(1, 4, 3, 1, 3);
    const x = makeInputs(s, 3, 'f32');
    const inputs = { q: Float64Array.from(x.q), k: Float64Array.from(x.k), v: Float64Array.from(x.v) };
    const w = x.dO; // loss = sum(w * o), so dL/do = w
    const loss = () => {
      const { o } = attentionForwardReference(inputs.q, inputs.k, inputs.v, s);
      return o.reduce((acc, oi, i) => acc + oi * w[i]!, 0);
    };
    const grads = attentionBackwardReference(inputs.q, inputs.k, inputs.v, w, s);
    const eps = 1e-6;
    for (const [name, grad] of [
      ['q', grads.dq],
      ['k', grads.dk],
      ['v', grads.dv],
    ] as const) {
      const a = inputs[name];
      const fd = new Float64Array(a.length);
      for (let i = 0; i < a.length; i++) {
        const keep = a[i]!;
        a[i] = keep + eps;
        const up = loss();
        a[i] = keep - eps;
        const down = loss();
        a[i] = keep;
        fd[i] = (up - down) / (2 * eps);
      }
      expectClose(grad, fd, { rtol: 1e-6, atol: 1e-8 }, `d${name} vs finite differences`);
    }
  });

  it('GPU gradients match a directional derivative of the GPU forward', async () => {
    const g = gpu();
    const s = shapeOf(1, 11, 4, 2, 10);
    const x = makeInputs(s, 11, 'f32');
    const t = uploadAll(g, s, x, 'f32');
    const options = { tiles: SMALL_TILES };
    attentionForward(g, t, options);
    attentionBackward(g, t, options);
    const [dq, dk, dv] = await Promise.all([t.dq, t.dk, t.dv].map((y) => g.read(y)));
    const rng = makeRng(12);
    const dir = { q: randn(rng, x.q.length), k: randn(rng, x.k.length), v: randn(rng, x.v.length) };
    let analytic = 0;
    for (const [grad, u] of [
      [dq!, dir.q],
      [dk!, dir.k],
      [dv!, dir.v],
    ] as const)
      for (let i = 0; i < u.length; i++) analytic += grad[i]! * u[i]!;

    const lossAt = async (eps: number): Promise<number> => {
      const shift = (a: Float32Array, u: Float32Array) => a.map((ai, i) => ai + eps * u[i]!);
      g.write(t.q, shift(x.q, dir.q));
      g.write(t.k, shift(x.k, dir.k));
      g.write(t.v, shift(x.v, dir.v));
      attentionForward(g, t, options);
      const o = await g.read(t.o);
      let loss = 0; // summed in float64
      for (let i = 0; i < o.length; i++) loss += o[i]! * x.dO[i]!;
      return loss;
    };
    const eps = 1e-2;
    const numeric = ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps);
    expect(Math.abs(numeric - analytic)).toBeLessThan(2e-3 * Math.abs(analytic) + 1e-3);
    releaseAll(t);
  });
});

describe('attention argument checks', () => {
  it('rejects mismatched shapes and dtypes, naming the tensors', () => {
    const g = gpu();
    const q = g.tensor('q', 'f32', [1, 5, 4, 8], 'workspace');
    const k = g.tensor('k', 'f32', [1, 5, 3, 8], 'workspace');
    const v = g.tensor('v', 'f32', [1, 5, 3, 8], 'workspace');
    const o = g.tensor('o', 'f32', [1, 5, 4, 8], 'workspace');
    const lse = g.tensor('lse', 'f32', [1, 4, 5], 'workspace');
    expect(() => attentionForward(g, { q, k, v, o, lse })).toThrow(/nKvHeads 3 .*'k'.* must divide nHeads 4/);
    const k2 = g.tensor('k2', 'f32', [1, 6, 2, 8], 'workspace');
    expect(() => attentionForward(g, { q, k: k2, v, o, lse })).toThrow(
      /k 'k2' must be \[1, 5, nKvHeads, 8\]/,
    );
    const kh = g.tensor('kh', 'f16', [1, 5, 2, 8], 'workspace');
    const vh = g.tensor('vh', 'f16', [1, 5, 2, 8], 'workspace');
    expect(() => attentionForward(g, { q, k: kh, v: vh, o, lse })).toThrow(/q 'q' is f32 but 'kh' is f16/);
    const k4 = g.tensor('k4', 'f32', [1, 5, 2, 8], 'workspace');
    const v4 = g.tensor('v4', 'f32', [1, 5, 2, 8], 'workspace');
    const badLse = g.tensor('badLse', 'f32', [1, 5, 4], 'workspace');
    expect(() => attentionForward(g, { q, k: k4, v: v4, o, lse: badLse })).toThrow(
      /lse 'badLse' must be f32\[1, 4, 5\]/,
    );
    expect(() =>
      attentionForward(
        g,
        { q, k: k4, v: v4, o, lse },
        { tiles: { forward: { rowsPerBlock: 6, keysPerBlock: 4, threadRows: 4, threadCols: 2 } } },
      ),
    ).toThrow(/rowsPerBlock 6 is not a multiple of threadRows 4/);
    for (const t of [q, k, v, o, lse, k2, kh, vh, k4, v4, badLse]) t.release();
  });

  it('picks tiles from the workgroup-memory limit', () => {
    const h200 = {
      maxComputeWorkgroupStorageSize: 49152,
      maxComputeInvocationsPerWorkgroup: 1024,
      maxComputeWorkgroupSizeX: 1024,
    };
    const lavapipe = { ...h200, maxComputeWorkgroupStorageSize: 32768 };
    expect(chooseAttentionTiles(h200, 128).forward.rowsPerBlock).toBe(32);
    expect(chooseAttentionTiles(h200, 64).forward.rowsPerBlock).toBe(64);
    expect(chooseAttentionTiles(lavapipe, 128).forward.rowsPerBlock).toBeGreaterThan(0);
    expect(() => chooseAttentionTiles({ ...h200, maxComputeWorkgroupStorageSize: 1024 }, 256)).toThrow(
      /head_dim 256 is too large/,
    );
  });
});
