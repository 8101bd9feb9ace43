import { describe, expect, it } from 'vitest';
import {
  createRopeTable,
  ropeBackward,
  ropeForward,
  ropeInvFreq,
  ropeReference,
  ropeTableValues,
} from '../src/kernels/rope.js';
import { positionsOf, type TokenPositions } from '../src/kernels/rows.js';
import type { GpuRuntime } from '../src/runtime.js';
import type { Tensor } from '../src/tensor.js';
import { f16Round } from '../src/dtype.js';
import { F16_NAN_PAIR, NAN_BITS, expectClose, expectF16Close, makeRng, randn, useGpu } from './harness.js';

const gpu = useGpu();

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Upload x, but first poison the storage so any element the kernel fails to write would show as NaN. */
function uploadPoisonCheck(g: GpuRuntime, label: string, shape: number[], values: Float32Array): Tensor {
  const t = g.tensor(label, 'f32', shape, 'workspace');
  g.fill32(t, NAN_BITS);
  g.write(t, values);
  return t;
}

interface Case {
  name: string;
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  positions: 'range' | 'ids';
  offset?: number;
  sequenceLength?: number;
}

const CASES: Case[] = [
  // An offset: position 0 is the identity rotation, which could not tell an unwritten element apart.
  {
    name: 'one token, one head, headDim 2',
    tokens: 1,
    heads: 1,
    kvHeads: 1,
    headDim: 2,
    positions: 'range',
    offset: 3,
  },
  {
    name: 'GQA 5 q heads / 1 kv head, odd half',
    tokens: 13,
    heads: 5,
    kvHeads: 1,
    headDim: 6,
    positions: 'range',
  },
  {
    name: 'batch of 3 sequences of 7 with an offset',
    tokens: 21,
    heads: 3,
    kvHeads: 3,
    headDim: 18,
    positions: 'range',
    offset: 5,
    sequenceLength: 7,
  },
  {
    name: 'position ids tensor, headDim 130',
    tokens: 37,
    heads: 3,
    kvHeads: 2,
    headDim: 130,
    positions: 'ids',
  },
];

const MAX_POSITIONS = 97;

describe('RoPE (HF rotate-half)', () => {
  for (const c of CASES) {
    it(`forward and backward match float64: ${c.name}`, async () => {
      const g = gpu();
      const rng = makeRng(c.tokens * 31 + c.headDim);
      const tableValues = ropeTableValues({ headDim: c.headDim, maxPositions: MAX_POSITIONS, theta: 10000 });
      const table = createRopeTable(g, { headDim: c.headDim, maxPositions: MAX_POSITIONS, theta: 10000 });
      let positions: TokenPositions;
      let hostPositions: Int32Array;
      if (c.positions === 'ids') {
        hostPositions = Int32Array.from({ length: c.tokens }, () => Math.floor(rng() * MAX_POSITIONS));
        positions = g.upload('positions', 'i32', [c.tokens], hostPositions);
      } else {
        positions = { offset: c.offset ?? 0, sequenceLength: c.sequenceLength ?? c.tokens };
        hostPositions = positionsOf(positions, c.tokens);
      }
      const q0 = randn(rng, c.tokens * c.heads * c.headDim);
      const k0 = randn(rng, c.tokens * c.kvHeads * c.headDim);
      const q = uploadPoisonCheck(g, 'q', [c.tokens, c.heads, c.headDim], q0);
      const k = uploadPoisonCheck(g, 'k', [c.tokens, c.kvHeads, c.headDim], k0);
      ropeForward(g, { q, k, table, positions });
      const qRef = ropeReference(q0, c.tokens, c.heads, c.headDim, tableValues, hostPositions);
      const kRef = ropeReference(k0, c.tokens, c.kvHeads, c.headDim, tableValues, hostPositions);
      expectClose(await g.read(q), qRef, { rtol: 1e-5, atol: 1e-6 }, 'q rotated');
      expectClose(await g.read(k), kRef, { rtol: 1e-5, atol: 1e-6 }, 'k rotated');

      const dq0 = randn(rng, q0.length);
      const dk0 = randn(rng, k0.length);
      const dq = uploadPoisonCheck(g, 'dq', [c.tokens, c.heads, c.headDim], dq0);
      const dk = uploadPoisonCheck(g, 'dk', [c.tokens, c.kvHeads, c.headDim], dk0);
      ropeBackward(g, { dq, dk, table, positions });
      const dqRef = ropeReference(dq0, c.tokens, c.heads, c.headDim, tableValues, hostPositions, 'backward');
      const dkRef = ropeReference(
        dk0,
        c.tokens,
        c.kvHeads,
        c.headDim,
        tableValues,
        hostPositions,
        'backward',
      );
      expectClose(await g.read(dq), dqRef, { rtol: 1e-5, atol: 1e-6 }, 'dq');
      expectClose(await g.read(dk), dkRef, { rtol: 1e-5, atol: 1e-6 }, 'dk');

      // Backward undoes forward (rotations are orthogonal): rotate q back.
      ropeBackward(g, { dq: q, table, positions });
      expectClose(await g.read(q), q0, { rtol: 1e-5, atol: 1e-5 }, 'backward(forward(q))');
      for (const t of [table, q, k, dq, dk]) t.release();
      if (c.positions === 'ids') (positions as Tensor).release();
    });
  }

  it('float64 backward equals central finite differences of the float64 forward', () => {
    const [tokens, heads, headDim] = [3, 2, 6];
    const table = ropeTableValues({ headDim, maxPositions: 8, theta: 500 });
    const positions = [7, 0, 3];
    const rng = makeRng(41);
    const x = Float64Array.from(randn(rng, tokens * heads * headDim));
    const dy = randn(rng, x.length);
    const loss = () => dot(ropeReference(x, tokens, heads, headDim, table, positions), dy);
    const h = 1e-6;
    const fd = Float64Array.from(x, (v, i) => {
      x[i] = v + h;
      const up = loss();
      x[i] = v - h;
      const down = loss();
      x[i] = v;
      return (up - down) / (2 * h);
    });
    const ref = ropeReference(dy, tokens, heads, headDim, table, positions, 'backward');
    expectClose(fd, ref, { rtol: 1e-7, atol: 1e-8 }, 'fd dx');
  });

  it('GPU backward agrees with a directional finite difference of the GPU forward', async () => {
    const g = gpu();
    const [tokens, heads, headDim] = [9, 3, 10];
    const table = createRopeTable(g, { headDim, maxPositions: 32, theta: 10000 });
    const positions = { offset: 3, sequenceLength: 5 };
    const rng = makeRng(43);
    const x0 = randn(rng, tokens * heads * headDim);
    const v = randn(rng, x0.length);
    const dy = randn(rng, x0.length);
    const lossAt = async (h: number) => {
      const x = g.upload(
        'x',
        'f32',
        [tokens, heads, headDim],
        Float32Array.from(x0, (xv, i) => xv + h * v[i]!),
      );
      ropeForward(g, { q: x, table, positions });
      const out = await g.read(x);
      x.release();
      return dot(out, dy);
    };
    const h = 1e-2;
    const numeric = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
    const dx = g.upload('dx', 'f32', [tokens, heads, headDim], dy);
    ropeBackward(g, { dq: dx, table, positions });
    const analytic = dot(await g.read(dx), v);
    expect(Math.abs(numeric - analytic)).toBeLessThan(1e-3 * Math.max(1, Math.abs(analytic)));
    table.release();
    dx.release();
  });

  it('poisons tokens whose position id is outside the table', async () => {
    const g = gpu();
    const [tokens, heads, headDim] = [3, 1, 4];
    const table = createRopeTable(g, { headDim, maxPositions: 5 });
    const ids = g.upload('ids', 'i32', [tokens], [4, 5, -1]);
    const x = g.upload('x', 'f32', [tokens, heads, headDim], new Float32Array(tokens * headDim).fill(1));
    ropeForward(g, { q: x, table, positions: ids });
    const out = Array.from(await g.read(x));
    expect(out.slice(0, 4).every(Number.isFinite)).toBe(true);
    expect(out.slice(4).every(Number.isNaN)).toBe(true);
    for (const t of [table, ids, x]) t.release();
  });
});

// f16 q/k (mixed precision): in place by word pairs when headDim / 2 is even, through a copy when odd.
const F16_CASES: Case[] = [
  {
    name: 'headDim 2 (copy path), offset',
    tokens: 1,
    heads: 1,
    kvHeads: 1,
    headDim: 2,
    positions: 'range',
    offset: 3,
  },
  {
    name: 'headDim 6 (copy path), GQA 5/1',
    tokens: 13,
    heads: 5,
    kvHeads: 1,
    headDim: 6,
    positions: 'range',
    offset: 1,
  },
  { name: 'headDim 8 (in place), ids', tokens: 11, heads: 3, kvHeads: 1, headDim: 8, positions: 'ids' },
  {
    name: 'headDim 64 (in place), 3 sequences of 7',
    tokens: 21,
    heads: 3,
    kvHeads: 2,
    headDim: 64,
    positions: 'range',
    offset: 5,
    sequenceLength: 7,
  },
  { name: 'headDim 130 (copy path), ids', tokens: 9, heads: 3, kvHeads: 2, headDim: 130, positions: 'ids' },
];

describe('RoPE on f16 q and k', () => {
  for (const c of F16_CASES) {
    it(`forward and backward within one f16 ulp of float64: ${c.name}`, async () => {
      const g = gpu();
      const rng = makeRng(c.tokens * 37 + c.headDim);
      const options = { headDim: c.headDim, maxPositions: MAX_POSITIONS, theta: 10000 };
      const tableValues = ropeTableValues(options);
      const table = createRopeTable(g, options);
      let positions: TokenPositions;
      let hostPositions: Int32Array;
      if (c.positions === 'ids') {
        hostPositions = Int32Array.from(
          { length: c.tokens },
          () => 1 + Math.floor(rng() * (MAX_POSITIONS - 1)),
        );
        positions = g.upload('positions', 'i32', [c.tokens], hostPositions);
      } else {
        positions = { offset: c.offset ?? 0, sequenceLength: c.sequenceLength ?? c.tokens };
        hostPositions = positionsOf(positions, c.tokens);
      }
      const upload16 = (label: string, heads: number, values: Float32Array): Tensor => {
        const t = g.tensor(label, 'f16', [c.tokens, heads, c.headDim], 'workspace');
        g.fill32(t, F16_NAN_PAIR);
        g.write(t, values);
        return t;
      };
      const ref = (v: ArrayLike<number>, heads: number, dir: 'forward' | 'backward') =>
        ropeReference(
          Float64Array.from(v, f16Round),
          c.tokens,
          heads,
          c.headDim,
          tableValues,
          hostPositions,
          dir,
        );
      // one rounding of the f32 result; atol covers results that cancel below f32's resolution of the
      // terms (|a c| + |b s| < 16 here, f32 error < 4e-6)
      const tol = { ulps: 1, atol: 4e-6 };
      const q0 = randn(rng, c.tokens * c.heads * c.headDim, 2);
      const k0 = randn(rng, c.tokens * c.kvHeads * c.headDim, 2);
      const q = upload16('q', c.heads, q0);
      const k = upload16('k', c.kvHeads, k0);
      ropeForward(g, { q, k, table, positions });
      expectF16Close(await g.read(q), ref(q0, c.heads, 'forward'), tol, 'q rotated');
      expectF16Close(await g.read(k), ref(k0, c.kvHeads, 'forward'), tol, 'k rotated');

      const dq0 = randn(rng, q0.length);
      const dk0 = randn(rng, k0.length);
      const dq = upload16('dq', c.heads, dq0);
      const dk = upload16('dk', c.kvHeads, dk0);
      ropeBackward(g, { dq, dk, table, positions });
      expectF16Close(await g.read(dq), ref(dq0, c.heads, 'backward'), tol, 'dq');
      expectF16Close(await g.read(dk), ref(dk0, c.kvHeads, 'backward'), tol, 'dk');
      for (const t of [table, q, k, dq, dk]) t.release();
      if (c.positions === 'ids') (positions as Tensor).release();
    });
  }

  it('poisons f16 tokens whose position id is outside the table (both paths)', async () => {
    const g = gpu();
    for (const headDim of [4, 6]) {
      const tokens = 3;
      const table = createRopeTable(g, { headDim, maxPositions: 5 });
      const ids = g.upload('ids', 'i32', [tokens], [4, 5, -1]);
      const x = g.upload('x', 'f16', [tokens, 1, headDim], new Float32Array(tokens * headDim).fill(1));
      ropeForward(g, { q: x, table, positions: ids });
      const out = Array.from(await g.read(x));
      expect(out.slice(0, headDim).every(Number.isFinite), `headDim ${headDim}`).toBe(true);
      expect(out.slice(headDim).every(Number.isNaN), `headDim ${headDim}`).toBe(true);
      for (const t of [table, ids, x]) t.release();
    }
  });
});

describe('RoPE table (HF float32 recipe)', () => {
  it('matches cos/sin of pos * theta^(-2i/d) within float32 angle rounding', () => {
    const headDim = 128;
    const maxPositions = 4096;
    const theta = 10000;
    const values = ropeTableValues({ headDim, maxPositions, theta });
    let worst = 0;
    for (const pos of [0, 1, 17, 1023, 4095]) {
      for (let i = 0; i < headDim / 2; i++) {
        const angle = pos * theta ** ((-2 * i) / headDim);
        // f32 angle rounding: relative 2^-24 of the angle, plus f32 rounding of the invFreq steps.
        const tol = angle * 2 ** -21 + 1e-7;
        const o = (pos * (headDim / 2) + i) * 2;
        const err = Math.max(
          Math.abs(values[o]! - Math.cos(angle)),
          Math.abs(values[o + 1]! - Math.sin(angle)),
        );
        worst = Math.max(worst, err / tol);
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('linear scaling divides the inverse frequencies, and attentionScaling scales cos and sin', () => {
    const base = ropeInvFreq(8, 100000);
    const scaled = ropeInvFreq(8, 100000, 4);
    for (let i = 0; i < base.length; i++) expect(scaled[i]).toBe(Math.fround(base[i]! / 4));
    expect(base[0]).toBe(1);
    const plain = ropeTableValues({ headDim: 8, maxPositions: 3 });
    const half = ropeTableValues({ headDim: 8, maxPositions: 3, attentionScaling: 0.5 });
    expectClose(
      half,
      Float64Array.from(plain, (v) => v * 0.5),
      { rtol: 1e-7, atol: 0 },
      'scaled table',
    );
  });

  it('rejects positions past the table and mismatched shapes, naming the tensor', () => {
    const g = gpu();
    const table = createRopeTable(g, { headDim: 4, maxPositions: 10 });
    const q = g.tensor('q', 'f32', [6, 2, 4], 'workspace');
    const k = g.tensor('k', 'f32', [6, 1, 6], 'workspace');
    expect(() => ropeForward(g, { q, table, positions: { offset: 5 } })).toThrow(/position 10 is past/);
    expect(() => ropeForward(g, { q, table, positions: { offset: 5, sequenceLength: 3 } })).not.toThrow();
    expect(() => ropeForward(g, { q, k, table, positions: {} })).toThrow(
      /k must be \[tokens, kvHeads, headDim\]/,
    );
    expect(() => ropeForward(g, { q, k: q, table, positions: {} })).toThrow(/same tensor/);
    for (const t of [table, q, k]) t.release();
  });
});
