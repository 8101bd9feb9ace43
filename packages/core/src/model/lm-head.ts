// The LM head's three matmuls (logits, their input gradient, the weight gradient) over the head weight's
// row blocks: a vocab x hidden table larger than one storage binding (GPT-2's 154 MB on llvmpipe's
// 128 MiB, a 128k x 4096 f32 table on a 2 GiB adapter) is used as slices of vocabulary rows, each a
// slice of the logits' columns. A head that fits is one block: the same single matmuls as before.
import { matmulStrided, rowBlocks, type GpuRuntime, type Tensor } from '@lsp-offload/gpu-dawn';

/** A matrix inside a tensor: rows of `ld` elements from element `offset` (defaults: 0, the row length). */
interface At {
  tensor: Tensor;
  offset?: number;
}

/** Parameters bound in row blocks when they exceed a binding: token tables and the LM head. */
export function isRowBlocked(spec: { role: string; module?: string }): boolean {
  return spec.role === 'lm_head' || (spec.role === 'embedding' && spec.module !== 'wpe');
}

/**
 * Tokens per LM-head/loss chunk: the configured count rounded down to a multiple of 64 (chunk offsets of
 * the i32 targets stay 256-byte aligned), at most what keeps one chunk of f32 logits within a binding.
 */
export function lossChunkRows(configured: number, vocabSize: number, maxBindingBytes: number): number {
  const chunk = Math.max(64, Math.floor(configured / 64) * 64);
  const fitting = Math.floor(Math.floor(maxBindingBytes / (4 * vocabSize)) / 64) * 64;
  return fitting >= 64 ? Math.min(chunk, fitting) : chunk;
}

/** out[:, :] = x W^T for m rows of x ([m, hidden] at x.offset); out is [m, vocab] (row-major, ld vocab). */
export function headForward(
  gpu: GpuRuntime,
  a: { m: number; x: At; w: Tensor; out: Tensor; label: string },
): void {
  const [vocab, hidden] = a.w.shape as [number, number];
  for (const b of rowBlocks(gpu, a.w))
    matmulStrided(gpu, {
      m: a.m,
      n: b.rows,
      k: hidden,
      transB: true,
      a: { tensor: a.x.tensor, offset: a.x.offset ?? 0 },
      b: { tensor: b.tensor },
      c: { tensor: a.out, offset: b.rowStart, ld: vocab },
      label: a.label,
    });
}

/** dx = dlogits W for m rows (dlogits [m, vocab]; dx [m, hidden] at dx.offset, overwritten). */
export function headInputGradient(
  gpu: GpuRuntime,
  a: { m: number; dlogits: Tensor; w: Tensor; dx: At; label: string },
): void {
  const [vocab, hidden] = a.w.shape as [number, number];
  for (const [i, b] of rowBlocks(gpu, a.w).entries())
    matmulStrided(gpu, {
      m: a.m,
      n: hidden,
      k: b.rows,
      a: { tensor: a.dlogits, offset: b.rowStart, ld: vocab },
      b: { tensor: b.tensor },
      c: { tensor: a.dx.tensor, offset: a.dx.offset ?? 0 },
      // the blocks' parts of the sum over the vocabulary add up
      beta: i === 0 ? 0 : 1,
      label: a.label,
    });
}

/** dW (+)= dlogits^T x for m rows (dW [vocab, hidden]; beta 1 adds to it). */
export function headWeightGradient(
  gpu: GpuRuntime,
  a: { m: number; dlogits: Tensor; x: At; dw: Tensor; beta: number; label: string },
): void {
  const [vocab, hidden] = a.dw.shape as [number, number];
  for (const b of rowBlocks(gpu, a.dw))
    matmulStrided(gpu, {
      m: b.rows,
      n: hidden,
      k: a.m,
      transA: true,
      a: { tensor: a.dlogits, offset: b.rowStart, ld: vocab },
      b: { tensor: a.x.tensor, offset: a.x.offset ?? 0 },
      c: { tensor: b.tensor },
      beta: a.beta,
      label: a.label,
    });
}
