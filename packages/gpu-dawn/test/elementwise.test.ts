import { describe, expect, it } from 'vitest';
import {
  add,
  addScaled,
  biasAdd,
  f16Round,
  gelu,
  geluBackward,
  scale,
  silu,
  siluBackward,
  swiglu,
  swigluBackward,
  type FloatDType,
  type GpuRuntime,
  Tensor,
} from '../src/index.js';
import {
  addScaledReference,
  biasAddReference,
  geluBackwardReference,
  geluReference,
  scaleReference,
  siluBackwardReference,
  siluReference,
  swigluBackwardReference,
  swigluReference,
} from '../src/reference.js';
import {
  expectClose,
  expectF16Close,
  makeRng,
  NAN_BITS,
  poisonedTensor,
  randn,
  useGpu,
  type Tolerance,
} from './harness.js';

const gpu = useGpu();

/** Odd sizes: 1 is a lone half-used f16 word, 4099 spans 9 workgroups of pairs and ends in half a pair. */
const SIZES = [1, 4099];
const DTYPES: FloatDType[] = ['f32', 'f16'];

/** f32 outputs: WGSL exp is a few ulp; f16 outputs: half an f16 ulp plus that (subnormals: atol). */
const TOL: Record<FloatDType, Tolerance> = {
  f32: { rtol: 1e-5, atol: 1e-6 },
  f16: { rtol: 6e-4, atol: 1e-7 },
};

/** Host values as stored: f16 inputs are rounded to f16 before the reference sees them. */
function stored(values: Float32Array, dtype: FloatDType): Float64Array {
  return Float64Array.from(values, (v) => (dtype === 'f16' ? f16Round(v) : v));
}

function upload(
  g: GpuRuntime,
  label: string,
  dtype: FloatDType,
  shape: number[],
  values: Float32Array,
): Tensor {
  return g.upload(label, dtype, shape, values);
}

function poisoned(g: GpuRuntime, label: string, dtype: FloatDType, shape: number[]): Tensor {
  const t = g.tensor(label, dtype, shape, 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}

/** Central differences of a float64 element-wise forward: d/dx sum(dy * f(x)) = dy * f'(x). */
function finiteDifference(
  f: (x: number) => number,
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
): Float64Array {
  const h = 1e-5;
  return Float64Array.from(
    { length: x.length },
    (_, i) => (dy[i]! * (f(x[i]! + h) - f(x[i]! - h))) / (2 * h),
  );
}

describe('unary activations and their backward', () => {
  // f16 storage goes through the same generated load/store code for every op: checked here on GELU
  // (each pipeline costs ~0.5 s of llvmpipe compile time)
  const cases = [
    {
      name: 'silu',
      fwd: silu,
      bwd: siluBackward,
      ref: siluReference,
      bwdRef: siluBackwardReference,
      dtypes: ['f32'],
    },
    {
      name: 'gelu',
      fwd: gelu,
      bwd: geluBackward,
      ref: geluReference,
      bwdRef: geluBackwardReference,
      dtypes: DTYPES,
    },
  ] as const;
  for (const c of cases)
    for (const dtype of c.dtypes)
      for (const n of SIZES) {
        it(`${c.name} ${dtype} n=${n}: forward and backward match float64`, async () => {
          const g = gpu();
          const rng = makeRng(n * 7 + (dtype === 'f16' ? 1 : 0));
          const xv = randn(rng, n, 3);
          const dyv = randn(rng, n);
          const x = upload(g, 'x', dtype, [n], xv);
          const dy = upload(g, 'dy', dtype, [n], dyv);
          const y = c.fwd(g, x, poisoned(g, 'y', dtype, [n]));
          const dx = c.bwd(g, x, dy, poisoned(g, 'dx', dtype, [n]));
          const xs = stored(xv, dtype);
          expectClose(await g.read(y), c.ref(xs), TOL[dtype], `${c.name} ${dtype}`);
          expectClose(await g.read(dx), c.bwdRef(xs, stored(dyv, dtype)), TOL[dtype], `${c.name}' ${dtype}`);
          for (const t of [x, dy, y, dx]) t.release();
        });
      }

  it('backward kernels match finite differences of the forward', async () => {
    const g = gpu();
    const rng = makeRng(11);
    const n = 37;
    const xv = randn(rng, n, 3);
    const dyv = randn(rng, n);
    const x = upload(g, 'x', 'f32', [n], xv);
    const dy = upload(g, 'dy', 'f32', [n], dyv);
    const siluF = (v: number): number => siluReference([v])[0]!;
    const geluF = (v: number): number => geluReference([v])[0]!;
    const dxSilu = await g.read(siluBackward(g, x, dy, poisoned(g, 'dx', 'f32', [n])));
    const dxGelu = await g.read(geluBackward(g, x, dy, poisoned(g, 'dx', 'f32', [n])));
    expectClose(dxSilu, finiteDifference(siluF, xv, dyv), { rtol: 1e-4, atol: 1e-5 }, 'silu FD');
    expectClose(dxGelu, finiteDifference(geluF, xv, dyv), { rtol: 1e-4, atol: 1e-5 }, 'gelu FD');
  });

  it('saturates cleanly at large |x| (no NaN from exp overflow)', async () => {
    const g = gpu();
    const xv = Float32Array.from([-1e30, -1e4, -100, -30, 30, 100, 1e4, 1e30, 0, -0]);
    const n = xv.length;
    const x = upload(g, 'x', 'f32', [n], xv);
    const dy = upload(g, 'dy', 'f32', [n], new Float32Array(n).fill(1));
    for (const [fwd, bwd, ref, bwdRef] of [
      [silu, siluBackward, siluReference, siluBackwardReference],
      [gelu, geluBackward, geluReference, geluBackwardReference],
    ] as const) {
      const y = await g.read(fwd(g, x, poisoned(g, 'y', 'f32', [n])));
      const dx = await g.read(bwd(g, x, dy, poisoned(g, 'dx', 'f32', [n])));
      expectClose(y, ref(xv), TOL.f32, `${fwd.name} large`);
      const wantDx = bwdRef(xv, new Float64Array(n).fill(1)).map((v) => (Number.isNaN(v) ? 0 : v));
      expectClose(dx, wantDx, TOL.f32, `${bwd.name} large`);
    }
  });

  it('runs in place on f16 words (out = x)', async () => {
    const g = gpu();
    const xv = randn(makeRng(3), 1001, 2);
    const x = upload(g, 'x', 'f16', [1001], xv);
    gelu(g, x, x);
    expectClose(await g.read(x), geluReference(stored(xv, 'f16')), TOL.f16, 'gelu in place');
    x.release();
  });
});

describe('SwiGLU', () => {
  for (const dtype of DTYPES)
    for (const n of SIZES) {
      it(`${dtype} [${n}]: forward and fused backward match float64`, async () => {
        const g = gpu();
        const rng = makeRng(n + 100);
        const [gv, uv, dyv] = [randn(rng, n, 3), randn(rng, n), randn(rng, n)];
        const gate = upload(g, 'gate', dtype, [n], gv);
        const up = upload(g, 'up', dtype, [n], uv);
        const dy = upload(g, 'dy', dtype, [n], dyv);
        const y = swiglu(g, gate, up, poisoned(g, 'y', dtype, [n]));
        // f16: in place (dGate = gate, dUp = up), as the MLP backward uses it; f32: poisoned outputs
        const grads = swigluBackward(
          g,
          gate,
          up,
          dy,
          dtype === 'f16'
            ? { dGate: gate, dUp: up }
            : { dGate: poisoned(g, 'dGate', dtype, [n]), dUp: poisoned(g, 'dUp', dtype, [n]) },
        );
        const [gs, us, dys] = [stored(gv, dtype), stored(uv, dtype), stored(dyv, dtype)];
        const want = swigluBackwardReference(gs, us, dys);
        expectClose(await g.read(y), swigluReference(gs, us), TOL[dtype], 'swiglu');
        expectClose(await g.read(grads.dGate), want.dGate, TOL[dtype], 'dGate');
        expectClose(await g.read(grads.dUp), want.dUp, TOL[dtype], 'dUp');
        for (const t of new Set([gate, up, dy, y, grads.dGate, grads.dUp])) t.release();
      });
    }

  it('backward matches finite differences of the forward', async () => {
    const g = gpu();
    const rng = makeRng(5);
    const n = 29;
    const [gv, uv, dyv] = [randn(rng, n, 3), randn(rng, n), randn(rng, n)];
    const gate = upload(g, 'gate', 'f32', [n], gv);
    const up = upload(g, 'up', 'f32', [n], uv);
    const dy = upload(g, 'dy', 'f32', [n], dyv);
    const { dGate, dUp } = swigluBackward(g, gate, up, dy, {
      dGate: poisoned(g, 'dGate', 'f32', [n]),
      dUp: poisoned(g, 'dUp', 'f32', [n]),
    });
    const f = (gg: number, uu: number): number => swigluReference([gg], [uu])[0]!;
    const h = 1e-5;
    const fdGate = Float64Array.from(
      gv,
      (v, i) => (dyv[i]! * (f(v + h, uv[i]!) - f(v - h, uv[i]!))) / (2 * h),
    );
    const fdUp = Float64Array.from(uv, (v, i) => (dyv[i]! * (f(gv[i]!, v + h) - f(gv[i]!, v - h))) / (2 * h));
    expectClose(await g.read(dGate), fdGate, { rtol: 1e-4, atol: 1e-5 }, 'dGate FD');
    expectClose(await g.read(dUp), fdUp, { rtol: 1e-4, atol: 1e-5 }, 'dUp FD');
  });
});

describe('add, scale, bias', () => {
  for (const dtype of DTYPES)
    for (const n of SIZES) {
      it(`${dtype} n=${n}: add, addScaled, scale match float64`, async () => {
        const g = gpu();
        const rng = makeRng(n + 200);
        const [av, bv] = [randn(rng, n), randn(rng, n)];
        const a = upload(g, 'a', dtype, [n], av);
        const b = upload(g, 'b', dtype, [n], bv);
        const alpha = Math.fround(-0.37);
        const [as, bs] = [stored(av, dtype), stored(bv, dtype)];
        const tol = TOL[dtype];
        expectClose(
          await g.read(add(g, a, b, poisoned(g, 'y', dtype, [n]))),
          addScaledReference(as, bs),
          tol,
          'add',
        );
        const ys = addScaled(g, a, b, alpha, poisoned(g, 'y', dtype, [n]));
        expectClose(await g.read(ys), addScaledReference(as, bs, alpha), tol, 'addScaled');
        const sc = scale(g, a, alpha, poisoned(g, 'y', dtype, [n]));
        expectClose(await g.read(sc), scaleReference(as, alpha), tol, 'scale');
        if (dtype === 'f16') {
          // residual add in place, a += b (f32 in place: the mixed-precision case below)
          add(g, a, b, a);
          expectClose(await g.read(a), addScaledReference(as, bs), tol, 'add in place');
        }
        for (const t of [a, b, ys, sc]) t.release();
      });
    }

  it('mixes an f32 residual stream with an f16 branch', async () => {
    const g = gpu();
    const rng = makeRng(9);
    const n = 513;
    const [av, bv] = [randn(rng, n), randn(rng, n)];
    const a = upload(g, 'a', 'f32', [n], av);
    const b = upload(g, 'b', 'f16', [n], bv);
    add(g, a, b, a);
    expectClose(await g.read(a), addScaledReference(av, stored(bv, 'f16')), TOL.f32, 'f32 += f16');
  });

  for (const dtype of DTYPES)
    for (const [rows, cols] of [
      [1, 1],
      [3, 5],
      [37, 129],
      [5, 3001],
    ] as const) {
      it(`biasAdd ${dtype} [${rows}, ${cols}] matches float64${dtype === 'f16' ? ', also in place' : ''}`, async () => {
        const g = gpu();
        const rng = makeRng(rows * cols);
        const [xv, bv] = [randn(rng, rows * cols), randn(rng, cols)];
        const x = upload(g, 'x', dtype, [rows, cols], xv);
        const bias = upload(g, 'bias', dtype, [cols], bv);
        const want = biasAddReference(stored(xv, dtype), stored(bv, dtype));
        const y = biasAdd(g, x, bias, poisoned(g, 'y', dtype, [rows, cols]));
        expectClose(await g.read(y), want, TOL[dtype], 'biasAdd');
        if (dtype === 'f16') {
          biasAdd(g, x, bias, x);
          expectClose(await g.read(x), want, TOL[dtype], 'biasAdd in place');
        }
        for (const t of [x, bias, y]) t.release();
      });
    }
});

// The mixed-precision flow: f16 activations in and out, f32 residual streams, each f16 output within one
// f16 ulp of the exactly rounded float64 result (f32 math, one rounding; atol only for results that
// cancel below f32's resolution of their terms). Outputs are poisoned in both f16 halves.
describe('mixed precision (f16 bounds in ulps)', () => {
  const n = 1001; // odd: the last f16 word is half used
  const ULP1 = { ulps: 1, atol: 1e-6 };

  it('swiglu and swigluBackward on f16 gate/up/dy, f16 outputs', async () => {
    const g = gpu();
    const rng = makeRng(41);
    const [gv, uv, dyv] = [randn(rng, n, 3), randn(rng, n, 2), randn(rng, n)];
    const [gate, up, dy] = [
      upload(g, 'gate', 'f16', [n], gv),
      upload(g, 'up', 'f16', [n], uv),
      upload(g, 'dy', 'f16', [n], dyv),
    ];
    const [gs, us, dys] = [stored(gv, 'f16'), stored(uv, 'f16'), stored(dyv, 'f16')];
    const y = swiglu(g, gate, up, poisonedTensor(g, 'act', 'f16', [n]));
    expectF16Close(await g.read(y), swigluReference(gs, us), ULP1, 'swiglu f16');
    const out = { dGate: poisonedTensor(g, 'dGate', 'f16', [n]), dUp: poisonedTensor(g, 'dUp', 'f16', [n]) };
    const { dGate, dUp } = swigluBackward(g, gate, up, dy, out);
    const want = swigluBackwardReference(gs, us, dys);
    expectF16Close(await g.read(dGate), want.dGate, ULP1, 'dGate f16');
    expectF16Close(await g.read(dUp), want.dUp, ULP1, 'dUp f16');
    for (const t of [gate, up, dy, y, dGate, dUp]) t.release();
  });

  it('gelu and geluBackward on f16, f16 outputs', async () => {
    const g = gpu();
    const rng = makeRng(43);
    const [xv, dyv] = [randn(rng, n, 3), randn(rng, n)];
    const [x, dy] = [upload(g, 'x', 'f16', [n], xv), upload(g, 'dy', 'f16', [n], dyv)];
    const [xs, dys] = [stored(xv, 'f16'), stored(dyv, 'f16')];
    const y = gelu(g, x, poisonedTensor(g, 'y', 'f16', [n]));
    expectF16Close(await g.read(y), geluReference(xs), ULP1, 'gelu f16');
    const dx = geluBackward(g, x, dy, poisonedTensor(g, 'dx', 'f16', [n]));
    expectF16Close(await g.read(dx), geluBackwardReference(xs, dys), ULP1, 'geluBackward f16');
    for (const t of [x, dy, y, dx]) t.release();
  });

  it('add and addScaled with every mix of f32 and f16 operands and output', async () => {
    const g = gpu();
    const rng = makeRng(47);
    const [av, bv] = [randn(rng, n, 4), randn(rng, n, 4)];
    const alpha = Math.fround(-0.37);
    for (const [ad, bd, yd] of [
      ['f32', 'f16', 'f32'], // residual stream += f16 branch
      ['f16', 'f32', 'f32'],
      ['f16', 'f16', 'f32'], // f16 sum kept in f32
      ['f32', 'f32', 'f16'], // sum rounded once to f16
      ['f32', 'f16', 'f16'],
    ] as const) {
      const a = upload(g, 'a', ad, [n], av);
      const b = upload(g, 'b', bd, [n], bv);
      const [as, bs] = [stored(av, ad), stored(bv, bd)];
      const what = `${ad} + ${bd} -> ${yd}`;
      const check = async (t: Tensor, want: Float64Array, op: string): Promise<void> => {
        if (yd === 'f16') expectF16Close(await g.read(t), want, ULP1, `${op} ${what}`);
        else expectClose(await g.read(t), want, TOL.f32, `${op} ${what}`);
      };
      const y = add(g, a, b, poisonedTensor(g, 'y', yd, [n]));
      await check(y, addScaledReference(as, bs), 'add');
      const z = addScaled(g, a, b, alpha, poisonedTensor(g, 'z', yd, [n]));
      await check(z, addScaledReference(as, bs, alpha), 'addScaled');
      for (const t of [a, b, y, z]) t.release();
    }
  });

  it('scale with an f16 output is the fused scale-and-cast: one rounding, overflow to inf', async () => {
    const g = gpu();
    const rng = makeRng(53);
    const xv = randn(rng, n, 100);
    xv[0] = 70000; // x 1 -> inf
    xv[1] = -1e30; // -inf
    const x = upload(g, 'x', 'f32', [n], xv);
    for (const alpha of [1, Math.fround(1 / 3), 1024]) {
      const y = scale(g, x, alpha, poisonedTensor(g, 'y16', 'f16', [n]));
      const got = await g.read(y);
      // a power-of-two alpha is exact in f32, so the f16 result is the exactly rounded one
      const exact = Number.isInteger(Math.log2(alpha));
      expectF16Close(got, scaleReference(xv, alpha), { ulps: exact ? 0 : 1 }, `scale ${alpha} -> f16`);
      if (alpha >= 1) expect(got[0]).toBe(Infinity);
      expect(got[1]).toBe(-Infinity);
      y.release();
    }
    x.release();
  });
});

describe('launch shapes and errors', () => {
  it('covers more pairs than one grid dimension holds (2D grid)', async () => {
    const g = gpu();
    const pairsPerRow = 256 * g.device.limits.maxComputeWorkgroupsPerDimension;
    const n = 2 * pairsPerRow + 5; // f16 keeps this within llvmpipe's 128 MiB binding
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = 0x3c00 + (i % 1000); // 1 + k/1024: doubling is exact
    const x = g.upload('x', 'f16', [n], bits);
    const y = scale(g, x, 2, poisoned(g, 'y', 'f16', [n]));
    const got = new Uint16Array(await g.readBytes(y.buffer, y.byteOffset, y.bindingSize, 'y'), 0, n);
    let bad = -1;
    for (let i = 0; i < n && bad < 0; i++) if (got[i] !== 0x4000 + (i % 1000)) bad = i; // 2 + k/512
    expect(bad, `first wrong element ${bad}: 0x${got[bad]?.toString(16)}`).toBe(-1);
    x.release();
    y.release();
  });

  it('names the tensors in shape, dtype and overlap errors', () => {
    const g = gpu();
    const a = g.tensor('a', 'f32', [4, 3], 'workspace');
    const b = g.tensor('b', 'f32', [3, 4], 'workspace');
    const i = g.tensor('idx', 'i32', [12], 'workspace');
    const bias = g.tensor('bias', 'f32', [4], 'workspace');
    expect(() => add(g, a, b)).toThrow(/add: 'b: f32\[3, 4\]' must have the shape of 'a: f32\[4, 3\]'/);
    expect(() => silu(g, i)).toThrow(/'idx: i32\[12\]' must be f32 or f16/);
    expect(() => biasAdd(g, a, bias)).toThrow(/bias 'bias: f32\[4\]' must have one element per column/);
    const head = new Tensor(a.buffer, 'f32', [6], 'aHead', a.byteOffset);
    const middle = new Tensor(a.buffer, 'f32', [6], 'aMiddle', a.byteOffset + 12);
    expect(() => silu(g, head, middle)).toThrow(/input 'aHead: f32\[6\]' partly overlaps output 'aMiddle/);
    for (const t of [a, b, i, bias]) t.release();
  });
});
