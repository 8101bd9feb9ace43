// The trainer's compress and apply paths end to end against dense float64 algebra:
//   S = (dY L)^T (X R)      equals L^T (dY^T X) R   (the gradient in the stored out x in layout)
//   W + L D R^T via expandRows + addTimesProjT equals the dense product (f32 weights)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuRuntime, addTimesProjT, expandRows, gatherColumns, matmul } from '@lsp-offload/gpu-dawn';
import { Rng, SparseProjector } from '../../src/index.js';

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

describe('compress and apply through sparse projectors', () => {
  for (const [T, rows, cols, d, r] of [
    [13, 29, 17, 7, 1],
    [33, 41, 23, 11, 4],
    [9, 37, 45, 19, 16],
  ] as const) {
    it(`S from the sparse path equals L^T (dY^T X) R, and the apply equals W + L D R^T (T=${T}, ${rows}x${cols}, d=${d}, r=${r})`, async () => {
      const rng = new Rng(T * rows + r);
      const L = SparseProjector.random(rows, d, r, rng);
      const R = SparseProjector.random(cols, d, r, rng);
      const x = randn(rng, T * cols);
      const dy = randn(rng, T * rows);
      const Lg = L.toGpu(gpu, 'L');
      const Rg = R.toGpu(gpu, 'R');
      const xt = gpu.upload('X', 'f32', [T, cols], x);
      const dyt = gpu.upload('dY', 'f32', [T, rows], dy);
      const a = gpu.tensor('A', 'f32', [T, d], 'workspace');
      const b = gpu.tensor('B', 'f32', [T, d], 'workspace');
      const s = gpu.tensor('S', 'f32', [d, d], 'gradients');
      gatherColumns(gpu, dyt, Lg, a); // rowsAct = dY
      gatherColumns(gpu, xt, Rg, b); // colsAct = X
      matmul(gpu, a, b, s, { transA: true });
      // dense reference: G = dY^T X (rows x cols), S = L^T G R
      const Ld = L.toDense();
      const Rd = R.toDense();
      const G = new Float64Array(rows * cols);
      for (let t = 0; t < T; t++)
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) G[i * cols + j]! += dy[t * rows + i]! * x[t * cols + j]!;
      const GR = new Float64Array(rows * d);
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++)
          for (let c = 0; c < d; c++) GR[i * d + c]! += G[i * cols + j]! * Rd[j * d + c]!;
      const S = new Float64Array(d * d);
      for (let i = 0; i < rows; i++)
        for (let a2 = 0; a2 < d; a2++)
          for (let c = 0; c < d; c++) S[a2 * d + c]! += Ld[i * d + a2]! * GR[i * d + c]!;
      expect(relErr(await gpu.read(s), S)).toBeLessThan(1e-5);

      const D = randn(rng, d * d);
      const w = randn(rng, rows * cols);
      const dt = gpu.upload('D', 'f32', [d, d], D);
      const wt = gpu.upload('W', 'f32', [rows, cols], w);
      const f = gpu.tensor('F', 'f32', [rows, d], 'workspace');
      expandRows(gpu, dt, Lg, f);
      addTimesProjT(gpu, wt, f, Rg, 1);
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
    });
  }
});
