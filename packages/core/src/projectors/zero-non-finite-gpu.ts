// NaN/Inf -> 0 in place on the GPU: moments after a transfer into a new subspace (MomentTransfer leaves
// this to its caller), without bringing d x d tensors back to the host.
import { runElementwise, type ElementwiseSpec, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';

const ZERO_NON_FINITE: ElementwiseSpec = {
  op: 'zero_non_finite',
  inputs: [{ name: 'x' }],
  outputs: ['y'],
  // a bit test, since comparisons with NaN may be folded away by shader compilers
  body: 'o.y = select(x, 0.0, (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u);',
};

export function zeroNonFiniteOnGpu(gpu: GpuRuntime, t: Tensor): void {
  runElementwise(gpu, ZERO_NON_FINITE, { n: t.numel, inputs: { x: t }, outputs: { y: t } });
}
