// The projector pair's compress and apply (the code training runs) end to end against dense float64
// algebra, for both stored layouts (LLaMA's out x in, GPT-2's Conv1D in x out):
//   compress(X, dY) = S equals L^T G R, with G = the weight gradient in the stored layout (from f32
//   activations, and from f16 ones as mixed precision hands them over: f16 gathers, S f32)
//   apply(W, D) equals W + L D R^T (f32 weights), and with a scale W + scale L D R^T (D as fp16)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime, f16Round } from '@lsp-offload/gpu-dawn';
import { ProjectorSet, Rng, type LinearWeightSpec } from '../../src/index.js';

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

const randn = (rng: Rng, n: number) => Float32Array.from({ length: n }, () => rng.normal());

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/** A linear weight stored rows x cols, in either layout. */
function linearSpec(rows: number, cols: number, layout: 'out_in' | 'in_out'): LinearWeightSpec {
  const [outFeatures, inFeatures] = layout === 'out_in' ? [rows, cols] : [cols, rows];
  return {
    name: 'model.layers.3.self_attn.q_proj.weight',
    shape: [rows, cols],
    role: 'linear',
    layer: 3,
    linearType: 'q_proj',
    inFeatures,
    outFeatures,
    layout,
  };
}

describe('compress and apply through sparse projectors', () => {
  for (const layout of ['out_in', 'in_out'] as const)
    for (const [T, rows, cols, d, r] of [
      [13, 29, 17, 7, 1],
      [33, 41, 23, 11, 4],
      [9, 37, 45, 19, 16],
    ] as const) {
      it(`S from the sparse path equals L^T G R, and the apply equals W + L D R^T (${layout}, T=${T}, ${rows}x${cols}, d=${d}, r=${r})`, async () => {
        const rng = new Rng(T * rows + r);
        const spec = linearSpec(rows, cols, layout);
        const set = new ProjectorSet(gpu, [{ name: spec.name, type: 'q_proj', rows, cols }], {
          d,
          r,
          sharing: 'layer',
          seed: T + rows,
        });
        const pair = set.pairsOf([spec]).get(spec.name)!;
        const { left: L, right: R } = set.hostProjectors(spec.name);
        const x = randn(rng, T * spec.inFeatures);
        const dy = randn(rng, T * spec.outFeatures);
        const xt = gpu.upload('X', 'f32', [T, spec.inFeatures], x);
        const dyt = gpu.upload('dY', 'f32', [T, spec.outFeatures], dy);
        const s = pair.compress(xt, dyt);
        const Ld = L.toDense();
        const Rd = R.toDense();
        // dense reference: G = rowsAct^T colsAct (dY^T X out x in, or X^T dY in x out), S = L^T G R
        const denseS = (x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array => {
          const [rowsAct, colsAct] = layout === 'out_in' ? [dy, x] : [x, dy];
          const G = new Float64Array(rows * cols);
          for (let t = 0; t < T; t++)
            for (let i = 0; i < rows; i++)
              for (let j = 0; j < cols; j++)
                G[i * cols + j]! += rowsAct[t * rows + i]! * colsAct[t * cols + j]!;
          const GR = new Float64Array(rows * d);
          for (let i = 0; i < rows; i++)
            for (let j = 0; j < cols; j++)
              for (let c = 0; c < d; c++) GR[i * d + c]! += G[i * cols + j]! * Rd[j * d + c]!;
          const S = new Float64Array(d * d);
          for (let i = 0; i < rows; i++)
            for (let a2 = 0; a2 < d; a2++)
              for (let c = 0; c < d; c++) S[a2 * d + c]! += Ld[i * d + a2]! * GR[i * d + c]!;
          return S;
        };
        expect(relErr(await gpu.read(s), denseS(x, dy))).toBeLessThan(1e-5);
        // f16 activations: the f16 values exactly, gathered into f16 A and B (one rounding each), S f32
        const x16 = gpu.upload('X16', 'f16', [T, spec.inFeatures], x);
        const dy16 = gpu.upload('dY16', 'f16', [T, spec.outFeatures], dy);
        const s16 = pair.compress(x16, dy16);
        expect(s16.dtype).toBe('f32');
        expect(relErr(await gpu.read(s16), denseS(x.map(f16Round), dy.map(f16Round)))).toBeLessThan(2e-3);
        for (const t of [x16, dy16, s16]) t.release();

        const D = randn(rng, d * d);
        const w = randn(rng, rows * cols);
        const dt = gpu.upload('D', 'f32', [d, d], D);
        const wt = gpu.upload('W', 'f32', [rows, cols], w);
        pair.apply(wt, dt, 1);
        const LD = new Float64Array(rows * d);
        for (let i = 0; i < rows; i++)
          for (let a2 = 0; a2 < d; a2++)
            for (let c = 0; c < d; c++) LD[i * d + c]! += Ld[i * d + a2]! * D[a2 * d + c]!;
        const want = Float64Array.from(w);
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++)
            for (let c = 0; c < d; c++) want[i * cols + j]! += LD[i * d + c]! * Rd[j * d + c]!;
        const got = await gpu.read(wt);
        let worst = 0;
        for (let i = 0; i < want.length; i++)
          worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
        expect(worst).toBeLessThan(1e-6);

        // a step sent as fp16 in units of a scale (the learning rate): W += scale L D R^T
        const scale = 0.37;
        const d16 = gpu.upload('D16', 'f16', [d, d], D);
        pair.apply(wt, d16, 2, { scale });
        const LD16 = new Float64Array(rows * d);
        for (let i = 0; i < rows; i++)
          for (let a2 = 0; a2 < d; a2++)
            for (let c = 0; c < d; c++) LD16[i * d + c]! += Ld[i * d + a2]! * f16Round(D[a2 * d + c]!);
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++)
            for (let c = 0; c < d; c++) want[i * cols + j]! += scale * LD16[i * d + c]! * Rd[j * d + c]!;
        const scaled = await gpu.read(wt);
        worst = 0;
        for (let i = 0; i < want.length; i++)
          worst = Math.max(worst, Math.abs(scaled[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
        expect(worst).toBeLessThan(1e-6);
        for (const t of [xt, dyt, s, dt, wt, d16]) t.release();
        set.release();
      });
    }
});
