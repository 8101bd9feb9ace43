// The arithmetic precision of training. `f32`: every activation and gradient f32 (the strict path the
// transformers fixtures check to 1e-4). `mixed`: fp16 mixed precision (WGSL has no bf16): the operands of
// every matmul (activations, their gradients, the attention tensors) are stored f16 so tensor cores can
// take them, with f32 accumulation; the residual stream and its gradient, norm and softmax statistics,
// logits, the loss and every weight gradient stay f32; the loss gradient is multiplied by a loss scale so
// small f16 gradients do not flush to zero (the optimizer divides it out). `auto` picks mixed where the
// adapter has shader-f16.
export const PRECISIONS = ['mixed', 'f32'] as const;
export type Precision = (typeof PRECISIONS)[number];
export type PrecisionFlag = Precision | 'auto';

/** The storage dtype of matmul operands (activations and their gradients) under `precision`. */
export function operandDtype(precision: Precision): 'f16' | 'f32' {
  return precision === 'mixed' ? 'f16' : 'f32';
}

/** What `auto` stands for on an adapter with or without shader-f16. */
export function defaultPrecision(hasShaderF16: boolean): Precision {
  return hasShaderF16 ? 'mixed' : 'f32';
}

/** The precision a --precision value (or the library option) stands for; throws on other values. */
export function resolvePrecision(flag: string | undefined, hasShaderF16: boolean): Precision {
  if (flag === undefined || flag === 'auto') return defaultPrecision(hasShaderF16);
  if (flag !== 'mixed' && flag !== 'f32')
    throw new Error(`precision must be auto, mixed or f32, got '${flag}'`);
  if (flag === 'mixed' && !hasShaderF16)
    throw new Error(
      "mixed precision needs the adapter feature 'shader-f16' (f16 activations), which this adapter lacks: use --precision f32",
    );
  return flag;
}
