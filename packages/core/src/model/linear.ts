// A linear layer in either Hugging Face layout: nn.Linear stores W as out x in (y = x W^T), GPT-2's Conv1D
// stores in x out (y = x W). Forward, input gradient and dense weight gradient for both.
import { biasAdd, matmul, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';
import type { LinearWeightSpec } from '../hf/index.js';

/** y [T, out] = x [T, in] . W (+ bias). */
export function linearForward(
  gpu: GpuRuntime,
  spec: LinearWeightSpec,
  w: Tensor,
  x: Tensor,
  y: Tensor,
  bias?: Tensor,
): void {
  // an f16 output takes the bias in the matmul's epilogue: rounded once, not twice
  const fused = bias !== undefined && y.dtype === 'f16';
  matmul(gpu, x, w, y, {
    transB: spec.layout === 'out_in',
    label: `${spec.name} forward`,
    ...(fused && { bias }),
  });
  if (bias && !fused) biasAdd(gpu, y, bias, y);
}

/** dx [T, in] (+)= dy [T, out] . W^T. */
export function linearBackwardInput(
  gpu: GpuRuntime,
  spec: LinearWeightSpec,
  w: Tensor,
  dy: Tensor,
  dx: Tensor,
  accumulate = false,
): void {
  matmul(gpu, dy, w, dx, { transB: spec.layout === 'in_out', accumulate, label: `${spec.name} dX` });
}

/** Dense weight gradient in the stored layout: dY^T X (out_in) or X^T dY (in_out), written or added. */
export function linearWeightGradient(
  gpu: GpuRuntime,
  spec: LinearWeightSpec,
  x: Tensor,
  dy: Tensor,
  dw: Tensor,
  accumulate: boolean,
): void {
  if (spec.layout === 'out_in')
    matmul(gpu, dy, x, dw, { transA: true, accumulate, label: `${spec.name} dW` });
  else matmul(gpu, x, dy, dw, { transA: true, accumulate, label: `${spec.name} dW` });
}

/**
 * The activations whose feature dimension matches the stored weight's rows and columns: the gradient is
 * rowsAct^T . colsAct in the stored layout. (Projectors are defined on stored rows and columns.)
 */
export function storedSides(
  spec: LinearWeightSpec,
  x: Tensor,
  dy: Tensor,
): { rowsAct: Tensor; colsAct: Tensor } {
  return spec.layout === 'out_in' ? { rowsAct: dy, colsAct: x } : { rowsAct: x, colsAct: dy };
}
