// `lsp-offload grads`: loss, logits and every parameter gradient of one batch, written as safetensors
// under HF names, so our numbers can be checked against any other implementation.
import { GpuRuntime } from '@lsp-offload/core';
import { computeGradients, readTokenBatch, writeGradsFile } from '@lsp-offload/core';

export interface GradsCommandOptions {
  model: string;
  inputs: string;
  out: string;
  dtype: 'f32' | 'f16';
  precision: 'f32' | 'mixed';
  checkpointing?: boolean;
}

export async function gradsCommand(opts: GradsCommandOptions): Promise<string> {
  if (opts.dtype !== 'f32' && opts.dtype !== 'f16')
    throw new Error(`--dtype must be f32 or f16, got '${opts.dtype}'`);
  if (opts.precision !== 'f32' && opts.precision !== 'mixed')
    throw new Error(`--precision must be f32 or mixed, got '${opts.precision}'`);
  const batch = await readTokenBatch(opts.inputs);
  const gpu = await GpuRuntime.create();
  try {
    const result = await computeGradients(gpu, opts.model, batch, {
      dtype: opts.dtype,
      precision: opts.precision,
      checkpointing: opts.checkpointing ?? false,
    });
    await writeGradsFile(opts.out, batch, result);
    return `loss ${result.loss.toFixed(6)} over ${result.keptTokens} tokens; wrote logits and ${result.grads.size} gradients to ${opts.out}`;
  } finally {
    gpu.destroy();
  }
}
