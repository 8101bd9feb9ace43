// How the model hands out gradients during the backward. The trainer's modes differ only in the sink:
// native keeps dense gradients on the GPU, lsp compresses each linear's gradient with its projectors the
// moment X and dY are ready, zero sends dense fp16 gradients to the CPU.
import type { Tensor } from '@lsp-offload/gpu-dawn';
import type { LinearWeightSpec, ParameterSpec } from '../hf/index.js';

export interface GradTarget {
  /** f32 tensor shaped like the parameter (or, with `ids`, [rows, hidden]: only the touched rows). */
  tensor: Tensor;
  /** Add into it (gradient accumulation) instead of overwriting. */
  accumulate: boolean;
  /**
   * A token table's gradient kept as the rows the step touches: each token's row in `tensor` (i32, one
   * per token of the micro-batch), used instead of the token ids.
   */
  ids?: Tensor;
}

export interface GradientSink {
  /** Whether this parameter's gradient is needed at all (frozen parameters: false; saves the work). */
  wants(spec: ParameterSpec): boolean;
  /**
   * A linear layer's inputs X [T, in] and output gradient dY [T, out] are ready: its weight gradient is
   * dY^T X (stored out x in) or X^T dY (stored in x out). The tensors are valid for commands recorded now
   * (they may be reused after the next submit). Only called when wants(spec).
   */
  linear(spec: LinearWeightSpec, x: Tensor, dy: Tensor): void;
  /** Where to write a non-linear parameter's gradient (norms, biases, embeddings, lm_head). */
  gradTarget(spec: ParameterSpec): GradTarget;
}
