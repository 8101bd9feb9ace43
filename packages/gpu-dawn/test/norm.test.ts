import { describe, expect, it } from 'vitest';
import { f16Round } from '../src/dtype.js';
import {
  layerNormBackward,
  layerNormForward,
  normBackwardReference,
  normReference,
  rmsNormBackward,
  rmsNormForward,
  type NormKind,
} from '../src/kernels/norm.js';
import type { GpuRuntime } from '../src/runtime.js';
import type { Tensor } from '../src/tensor.js';
import { NAN_BITS, expectClose, expectF16Close, makeRng, poisonedTensor, randn, useGpu } from './harness.js';

const gpu = useGpu();

type WeightDtype = 'f32' | 'f16';

interface Problem {
  rows: number;
  cols: number;
  x: Float32Array;
  weight: Float64Array;
  bias: Float64Array;
  dy: Float32Array;
}

/** Random inputs; weights are rounded to f16 when stored as f16 so the reference sees the same values. */
function problem(seed: number, rows: number, cols: number, dtype: WeightDtype): Problem {
  const rng = makeRng(seed);
  const round = dtype === 'f16' ? f16Round : Math.fround;
  const x = randn(rng, rows * cols);
  // An offset mean makes LayerNorm's centring matter.
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + 0.5;
  const weight = Float64Array.from(randn(rng, cols, 0.5), (v) => round(1 + v));
  const bias = Float64Array.from(randn(rng, cols, 0.5), round);
  const dy = randn(rng, rows * cols);
  return { rows, cols, x, weight, bias, dy };
}

interface Uploaded {
  x: Tensor;
  weight: Tensor;
  bias: Tensor;
  dy: Tensor;
  release(): void;
}

function upload(g: GpuRuntime, p: Problem, dtype: WeightDtype): Uploaded {
  const t = {
    x: g.upload('x', 'f32', [p.rows, p.cols], p.x),
    weight: g.upload('weight', dtype, [p.cols], p.weight),
    bias: g.upload('bias', dtype, [p.cols], p.bias),
    dy: g.upload('dy', 'f32', [p.rows, p.cols], p.dy),
  };
  return { ...t, release: () => Object.values(t).forEach((v) => v.release()) };
}

function poisoned(g: GpuRuntime, label: string, shape: number[]): Tensor {
  const t = g.tensor(label, 'f32', shape, 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}

function forward(
  g: GpuRuntime,
  kind: NormKind,
  u: Uploaded,
  y: Tensor,
  mean: Tensor,
  rstd: Tensor,
  eps: number,
) {
  if (kind === 'rms') rmsNormForward(g, { x: u.x, weight: u.weight, y, rstd, eps });
  else layerNormForward(g, { x: u.x, weight: u.weight, bias: u.bias, y, mean, rstd, eps });
}

const EPS = 1e-5;

/** Float64 dot product. */
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
// Odd shapes: a single element, rows shorter than the workgroup, several loop trips per row (C > 256).
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 7],
  [5, 37],
  [13, 301],
  [2, 777],
];

describe.each(['rms', 'layer'] as const)('%s norm', (kind) => {
  describe.each(['f32', 'f16'] as const)('weights %s', (dtype) => {
    for (const [rows, cols] of SHAPES) {
      it(`forward matches float64 for ${rows} x ${cols}`, async () => {
        const g = gpu();
        const p = problem(rows * 1000 + cols, rows, cols, dtype);
        const u = upload(g, p, dtype);
        const y = poisoned(g, 'y', [rows, cols]);
        const mean = poisoned(g, 'mean', [rows]);
        const rstd = poisoned(g, 'rstd', [rows]);
        forward(g, kind, u, y, mean, rstd, EPS);
        const ref = normReference(kind, p.x, cols, p.weight, p.bias, EPS);
        expectClose(await g.read(y), ref.y, { rtol: 2e-5, atol: 2e-5 }, 'y');
        expectClose(await g.read(rstd), ref.rstd, { rtol: 2e-5, atol: 0 }, 'rstd');
        if (kind === 'layer') expectClose(await g.read(mean), ref.mean, { rtol: 1e-5, atol: 1e-6 }, 'mean');
        for (const t of [y, mean, rstd]) t.release();
        u.release();
      });

      it(`backward matches float64 for ${rows} x ${cols}`, async () => {
        const g = gpu();
        const p = problem(rows * 7 + cols, rows, cols, dtype);
        const u = upload(g, p, dtype);
        const y = poisoned(g, 'y', [rows, cols]);
        const mean = poisoned(g, 'mean', [rows]);
        const rstd = poisoned(g, 'rstd', [rows]);
        forward(g, kind, u, y, mean, rstd, EPS);
        const dx = poisoned(g, 'dx', [rows, cols]);
        const dweight = poisoned(g, 'dweight', [cols]);
        const dbias = poisoned(g, 'dbias', [cols]);
        if (kind === 'rms') rmsNormBackward(g, { dy: u.dy, x: u.x, weight: u.weight, rstd, dx, dweight });
        else layerNormBackward(g, { dy: u.dy, x: u.x, weight: u.weight, mean, rstd, dx, dweight, dbias });
        const ref = normBackwardReference(kind, p.dy, p.x, cols, p.weight, EPS);
        expectClose(await g.read(dx), ref.dx, { rtol: 1e-4, atol: 1e-5 }, 'dx');
        expectClose(await g.read(dweight), ref.dweight, { rtol: 1e-4, atol: 1e-5 * Math.sqrt(rows) }, 'dw');
        if (kind === 'layer')
          expectClose(await g.read(dbias), ref.dbias, { rtol: 1e-4, atol: 1e-5 * Math.sqrt(rows) }, 'db');
        for (const t of [y, mean, rstd, dx, dweight, dbias]) t.release();
        u.release();
      });
    }
  });

  it('weight gradients over many rows (several rows per chunk) match and are bitwise reproducible', async () => {
    const g = gpu();
    const rows = 8209;
    const cols = 3;
    const p = problem(99, rows, cols, 'f32');
    const u = upload(g, p, 'f32');
    const mean = poisoned(g, 'mean', [rows]);
    const rstd = poisoned(g, 'rstd', [rows]);
    const y = poisoned(g, 'y', [rows, cols]);
    forward(g, kind, u, y, mean, rstd, EPS);
    const runs: Float32Array[] = [];
    for (let i = 0; i < 2; i++) {
      const dx = poisoned(g, 'dx', [rows, cols]);
      const dweight = poisoned(g, 'dweight', [cols]);
      const dbias = poisoned(g, 'dbias', [cols]);
      if (kind === 'rms') rmsNormBackward(g, { dy: u.dy, x: u.x, weight: u.weight, rstd, dx, dweight });
      else layerNormBackward(g, { dy: u.dy, x: u.x, weight: u.weight, mean, rstd, dx, dweight, dbias });
      const ref = normBackwardReference(kind, p.dy, p.x, cols, p.weight, EPS);
      const dw = (await g.read(dweight)) as Float32Array;
      expectClose(dw, ref.dweight, { rtol: 1e-4, atol: 1e-3 }, 'dw');
      // Rows of 3 can have a tiny variance, so rstd amplifies f32 rounding in dx: a looser atol.
      expectClose(await g.read(dx), ref.dx, { rtol: 1e-4, atol: 1e-4 }, 'dx');
      if (kind === 'layer') expectClose(await g.read(dbias), ref.dbias, { rtol: 1e-4, atol: 1e-3 }, 'db');
      runs.push(dw);
      for (const t of [dx, dweight, dbias]) t.release();
    }
    expect(Array.from(runs[1]!)).toEqual(Array.from(runs[0]!));
    for (const t of [y, mean, rstd]) t.release();
    u.release();
  });

  it('accumulates into dx and dweight when asked, and skips a frozen weight', async () => {
    const g = gpu();
    const [rows, cols] = [6, 45];
    const p = problem(5, rows, cols, 'f32');
    const u = upload(g, p, 'f32');
    const mean = poisoned(g, 'mean', [rows]);
    const rstd = poisoned(g, 'rstd', [rows]);
    const y = poisoned(g, 'y', [rows, cols]);
    forward(g, kind, u, y, mean, rstd, EPS);
    const rng = makeRng(17);
    const dx0 = randn(rng, rows * cols);
    const dw0 = randn(rng, cols);
    const db0 = randn(rng, cols);
    const dx = g.upload('dx', 'f32', [rows, cols], dx0);
    const dweight = g.upload('dweight', 'f32', [cols], dw0);
    const dbias = g.upload('dbias', 'f32', [cols], db0);
    const common = { dy: u.dy, x: u.x, weight: u.weight, rstd, dx, dweight, accumulateDx: true };
    if (kind === 'rms') rmsNormBackward(g, { ...common, accumulateParams: true });
    else layerNormBackward(g, { ...common, mean, dbias, accumulateParams: true });
    const ref = normBackwardReference(kind, p.dy, p.x, cols, p.weight, EPS);
    const plus = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v + b[i]!);
    expectClose(await g.read(dx), plus(dx0, ref.dx), { rtol: 1e-4, atol: 1e-5 }, 'dx accumulated');
    expectClose(await g.read(dweight), plus(dw0, ref.dweight), { rtol: 1e-4, atol: 1e-5 }, 'dw accumulated');
    if (kind === 'layer')
      expectClose(await g.read(dbias), plus(db0, ref.dbias), { rtol: 1e-4, atol: 1e-5 }, 'db accumulated');

    // Frozen weight: no dweight given, only dx is written.
    const dx2 = poisoned(g, 'dx2', [rows, cols]);
    if (kind === 'rms') rmsNormBackward(g, { dy: u.dy, x: u.x, weight: u.weight, rstd, dx: dx2 });
    else layerNormBackward(g, { dy: u.dy, x: u.x, weight: u.weight, mean, rstd, dx: dx2 });
    expectClose(await g.read(dx2), ref.dx, { rtol: 1e-4, atol: 1e-5 }, 'dx (frozen weight)');
    for (const t of [y, mean, rstd, dx, dweight, dbias, dx2]) t.release();
    u.release();
  });

  it('float64 backward agrees with central finite differences of the float64 forward', () => {
    const [rows, cols] = [3, 5];
    const p = problem(11, rows, cols, 'f32');
    const x = Float64Array.from(p.x);
    const w = Float64Array.from(p.weight);
    const b = Float64Array.from(p.bias);
    const loss = (xv: Float64Array, wv: Float64Array, bv: Float64Array) =>
      normReference(kind, xv, cols, wv, bv, EPS).y.reduce((s, v, i) => s + v * p.dy[i]!, 0);
    const ref = normBackwardReference(kind, p.dy, x, cols, w, EPS);
    const h = 1e-6;
    const fd = (arr: Float64Array, i: number) => {
      const keep = arr[i]!;
      arr[i] = keep + h;
      const up = loss(x, w, b);
      arr[i] = keep - h;
      const down = loss(x, w, b);
      arr[i] = keep;
      return (up - down) / (2 * h);
    };
    expectClose(
      Float64Array.from(x, (_, i) => fd(x, i)),
      ref.dx,
      { rtol: 1e-6, atol: 1e-7 },
      'fd dx',
    );
    expectClose(
      Float64Array.from(w, (_, i) => fd(w, i)),
      ref.dweight,
      { rtol: 1e-6, atol: 1e-7 },
      'fd dw',
    );
    if (kind === 'layer')
      expectClose(
        Float64Array.from(b, (_, i) => fd(b, i)),
        ref.dbias,
        { rtol: 1e-6, atol: 1e-7 },
        'fd db',
      );
  });

  it('GPU backward agrees with a directional finite difference of the GPU forward', async () => {
    // L(x, w, b) = sum(dy * y); d/dh L(x + h vx, w + h vw, b + h vb) = <dx, vx> + <dw, vw> + <db, vb>.
    const g = gpu();
    const [rows, cols] = [4, 19];
    const p = problem(23, rows, cols, 'f32');
    const rng = makeRng(29);
    const vx = randn(rng, rows * cols);
    const vw = randn(rng, cols);
    const vb = randn(rng, cols);
    const y = poisoned(g, 'y', [rows, cols]);
    const mean = poisoned(g, 'mean', [rows]);
    const rstd = poisoned(g, 'rstd', [rows]);
    const lossAt = async (h: number) => {
      const shifted: Problem = {
        ...p,
        x: Float32Array.from(p.x, (v, i) => v + h * vx[i]!),
        weight: Float64Array.from(p.weight, (v, i) => v + h * vw[i]!),
        bias: Float64Array.from(p.bias, (v, i) => v + h * vb[i]!),
      };
      const u = upload(g, shifted, 'f32');
      forward(g, kind, u, y, mean, rstd, EPS);
      const out = await g.read(y);
      u.release();
      return dot(out, p.dy);
    };
    const h = 1e-2;
    const numeric = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);

    const u = upload(g, p, 'f32');
    forward(g, kind, u, y, mean, rstd, EPS);
    const dx = poisoned(g, 'dx', [rows, cols]);
    const dweight = poisoned(g, 'dweight', [cols]);
    const dbias = poisoned(g, 'dbias', [cols]);
    if (kind === 'rms') rmsNormBackward(g, { dy: u.dy, x: u.x, weight: u.weight, rstd, dx, dweight });
    else layerNormBackward(g, { dy: u.dy, x: u.x, weight: u.weight, mean, rstd, dx, dweight, dbias });
    let analytic = dot(await g.read(dx), vx) + dot(await g.read(dweight), vw);
    if (kind === 'layer') analytic += dot(await g.read(dbias), vb);
    expect(Math.abs(numeric - analytic)).toBeLessThan(2e-3 * Math.max(1, Math.abs(analytic)));
    for (const t of [y, mean, rstd, dx, dweight, dbias]) t.release();
    u.release();
  });
});

// Mixed precision: y f16 (the matmul operand), dy f16 or f32; x, statistics, dx and dweight f32.
describe.each(['rms', 'layer'] as const)('%s norm, mixed precision', (kind) => {
  // odd row lengths make two rows share an f16 word (the edge pass; rows of 1 are all edges); 6 is even
  const shapes: [number, number][] = [
    [1, 1],
    [5, 1],
    [3, 7],
    [4, 6],
    [13, 301],
    [2, 777],
  ];
  for (const [rows, cols] of shapes) {
    it(`f16 y is within one f16 ulp of the exactly rounded float64 result, ${rows} x ${cols}`, async () => {
      const g = gpu();
      const p = problem(rows * 31 + cols, rows, cols, 'f16');
      const u = upload(g, p, 'f16');
      const y = poisonedTensor(g, 'y', 'f16', [rows, cols]);
      const mean = poisoned(g, 'mean', [rows]);
      const rstd = poisoned(g, 'rstd', [rows]);
      forward(g, kind, u, y, mean, rstd, EPS);
      const ref = normReference(kind, p.x, cols, p.weight, p.bias, EPS);
      // f32 math then one rounding to f16: at most one f16 step from the exactly rounded value
      expectF16Close(await g.read(y), ref.y, { ulps: 1 }, 'y f16');
      expectClose(await g.read(rstd), ref.rstd, { rtol: 2e-5, atol: 0 }, 'rstd');
      if (kind === 'layer') expectClose(await g.read(mean), ref.mean, { rtol: 1e-5, atol: 1e-6 }, 'mean');
      for (const t of [y, mean, rstd]) t.release();
      u.release();
    });
  }

  it('f16 y overflows to inf (never a clamped 65504), other columns unaffected', async () => {
    const g = gpu();
    const [rows, cols] = [3, 5];
    const p = problem(3, rows, cols, 'f32');
    p.weight[2] = 1e6; // |xhat| > 0.07 makes y[., 2] exceed the f16 range
    const u = upload(g, p, 'f32');
    const y = poisonedTensor(g, 'y', 'f16', [rows, cols]);
    const mean = poisoned(g, 'mean', [rows]);
    const rstd = poisoned(g, 'rstd', [rows]);
    forward(g, kind, u, y, mean, rstd, EPS);
    const ref = normReference(kind, p.x, cols, p.weight, p.bias, EPS);
    expect(ref.y.filter((v, i) => i % cols === 2 && Math.abs(v) > 65520).length).toBeGreaterThan(0);
    expectF16Close(await g.read(y), ref.y, { ulps: 1 }, 'y f16 with overflow');
    for (const t of [y, mean, rstd]) t.release();
    u.release();
  });

  for (const [rows, cols] of [
    [5, 37],
    [2, 777],
  ] as [number, number][]) {
    it(`backward with f16 dy matches float64 (dx, dweight f32), also accumulating, ${rows} x ${cols}`, async () => {
      const g = gpu();
      const p = problem(rows * 13 + cols, rows, cols, 'f16');
      const dy16 = Float64Array.from(p.dy, f16Round); // what the kernel sees
      const u = upload(g, p, 'f16');
      const dy = g.upload('dy16', 'f16', [rows, cols], p.dy);
      const y = poisonedTensor(g, 'y', 'f16', [rows, cols]);
      const mean = poisoned(g, 'mean', [rows]);
      const rstd = poisoned(g, 'rstd', [rows]);
      forward(g, kind, u, y, mean, rstd, EPS);
      const dx = poisoned(g, 'dx', [rows, cols]);
      const dweight = poisoned(g, 'dweight', [cols]);
      const dbias = poisoned(g, 'dbias', [cols]);
      const args = { dy, x: u.x, weight: u.weight, rstd, dx, dweight };
      if (kind === 'rms') rmsNormBackward(g, args);
      else layerNormBackward(g, { ...args, mean, dbias });
      const ref = normBackwardReference(kind, dy16, p.x, cols, p.weight, EPS);
      // f32 math on exact f16 inputs: the f32 bounds of the f32 test
      const atolW = 1e-5 * Math.sqrt(rows);
      expectClose(await g.read(dx), ref.dx, { rtol: 1e-4, atol: 1e-5 }, 'dx');
      expectClose(await g.read(dweight), ref.dweight, { rtol: 1e-4, atol: atolW }, 'dw');
      if (kind === 'layer') expectClose(await g.read(dbias), ref.dbias, { rtol: 1e-4, atol: atolW }, 'db');
      // into the f32 residual gradient: dx += ..., dweight += ...
      if (kind === 'rms') rmsNormBackward(g, { ...args, accumulateDx: true, accumulateParams: true });
      else layerNormBackward(g, { ...args, mean, dbias, accumulateDx: true, accumulateParams: true });
      const twice = (a: Float64Array) => a.map((v) => 2 * v);
      expectClose(await g.read(dx), twice(ref.dx), { rtol: 1e-4, atol: 2e-5 }, 'dx accumulated');
      expectClose(
        await g.read(dweight),
        twice(ref.dweight),
        { rtol: 1e-4, atol: 2 * atolW },
        'dw accumulated',
      );
      for (const t of [dy, y, mean, rstd, dx, dweight, dbias]) t.release();
      u.release();
    });
  }
});

describe('norm argument checks', () => {
  it('names the offending tensor', () => {
    const g = gpu();
    const x = g.tensor('x', 'f32', [3, 5], 'workspace');
    const w = g.tensor('w', 'f32', [4], 'workspace');
    const y = g.tensor('y', 'f32', [3, 5], 'workspace');
    const rstd = g.tensor('rstd', 'f32', [3], 'workspace');
    expect(() => rmsNormForward(g, { x, weight: w, y, rstd, eps: 1e-5 })).toThrow(
      /weight must be f32 or f16 \[5\]/,
    );
    const w5 = g.tensor('w5', 'f32', [5], 'workspace');
    expect(() => rmsNormForward(g, { x, weight: w5, y: x, rstd, eps: 1e-5 })).toThrow(
      /x and y share storage/,
    );
    const xi = g.tensor('xi', 'i32', [3, 5], 'workspace');
    expect(() => rmsNormForward(g, { x: xi, weight: w5, y, rstd, eps: 1e-5 })).toThrow(/x must be f32/);
    for (const t of [x, w, y, rstd, w5, xi]) t.release();
  });
});
