// Our forward and backward against Hugging Face transformers (float64 references made by
// fixtures/make_hf_fixtures.py): logits, loss and every parameter gradient, f32 and f16 weights, with
// and without gradient checkpointing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GpuRuntime } from '@lsp-offload/gpu-dawn';
import { SafetensorsFile, computeGradients, type GradsResult } from '../../src/index.js';

const fixtures = fileURLToPath(new URL('../../fixtures/hf/', import.meta.url));

let gpu: GpuRuntime;
beforeAll(async () => {
  gpu = await GpuRuntime.create();
});
afterAll(() => gpu?.destroy());

interface Reference {
  inputIds: Int32Array;
  labels: Int32Array;
  batch: number;
  seq: number;
  logits: Float64Array;
  loss: number;
  grads: Map<string, Float64Array>;
}

async function readReference(dir: string): Promise<Reference> {
  const path = join(dir, 'reference.safetensors');
  if (!existsSync(path))
    throw new Error(`missing ${path}: run fixtures/make_hf_fixtures.py (see packages/core/README.md)`);
  const f = await SafetensorsFile.open(path);
  try {
    const ids = await f.readInt32('input_ids');
    const grads = new Map<string, Float64Array>();
    for (const name of f.tensors.keys())
      if (name.startsWith('grad.')) grads.set(name.slice(5), (await f.readFloat64(name)).data);
    return {
      inputIds: ids.data,
      labels: (await f.readInt32('labels')).data,
      batch: ids.shape[0]!,
      seq: ids.shape[1]!,
      logits: (await f.readFloat64('logits')).data,
      loss: (await f.readFloat64('loss')).data[0]!,
      grads,
    };
  } finally {
    await f.close();
  }
}

function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return err / scale;
}

function relL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** Our gradients on a fixture's batch, beside the transformers reference. */
async function gradientsOf(
  model: string,
  options: Parameters<typeof computeGradients>[3],
): Promise<{ ref: Reference; result: GradsResult }> {
  const dir = join(fixtures, model);
  const ref = await readReference(dir);
  const batch = { batch: ref.batch, seqLen: ref.seq, inputIds: ref.inputIds, labels: ref.labels };
  return { ref, result: await computeGradients(gpu, dir, batch, options) };
}

/** The same gradient names, each within `bound` relative L2 of the reference (all offenders listed). */
function expectGradientsWithin(result: GradsResult, ref: Reference, bound: number): void {
  expect([...result.grads.keys()].sort()).toEqual([...ref.grads.keys()].sort());
  const bad: string[] = [];
  for (const [name, want] of ref.grads) {
    const e = relL2(result.grads.get(name)!.data, want);
    if (!(e <= bound)) bad.push(`${name}: ${e.toExponential(2)}`);
  }
  expect(bad, 'gradients over tolerance (relative L2)').toEqual([]);
}

const cases = [
  { model: 'llama-gqa', dtype: 'f32' as const },
  { model: 'llama-tied', dtype: 'f32' as const },
  { model: 'gpt2', dtype: 'f32' as const },
  { model: 'llama-gqa-f16', dtype: 'f16' as const },
  { model: 'llama-tied-f16', dtype: 'f16' as const },
  { model: 'gpt2-f16', dtype: 'f16' as const },
];

describe('model vs transformers fixtures', () => {
  for (const { model, dtype } of cases) {
    for (const checkpointing of [false, true]) {
      it(`${model} (${dtype} weights, checkpointing ${checkpointing ? 'on' : 'off'})`, async () => {
        const { ref, result } = await gradientsOf(model, { dtype, checkpointing });
        const tol =
          dtype === 'f32'
            ? { logits: 1e-4, loss: 1e-4, grad: 1e-3 }
            : { logits: 1e-2, loss: 1e-2, grad: 1e-2 };
        expect(maxRel(result.logits, ref.logits), 'logits max relative error').toBeLessThan(tol.logits);
        expect(Math.abs(result.loss - ref.loss) / Math.abs(ref.loss), 'loss').toBeLessThan(tol.loss);
        expectGradientsWithin(result, ref, tol.grad);
      });
    }
  }
});

// Mixed precision: f16 matmul operands (activations, their gradients, attention), f32 residual stream,
// statistics, logits and loss, the backward under GradScaler's initial loss scale 2^16 (divided out on
// read). Bounds for f16 operands (11-bit significands): loss within 1e-2 absolute, logits and every
// gradient within 2e-2 relative L2 of the float64 references.
describe('model vs transformers fixtures, mixed precision', () => {
  const bounds = { loss: 1e-2, logits: 2e-2, grad: 2e-2 };
  for (const { model, dtype } of cases) {
    for (const checkpointing of dtype === 'f32' ? [false] : [false, true]) {
      it(`${model} (${dtype} weights, checkpointing ${checkpointing ? 'on' : 'off'})`, async () => {
        const { ref, result } = await gradientsOf(model, { dtype, checkpointing, precision: 'mixed' });
        expect(relL2(result.logits, ref.logits), 'logits relative L2').toBeLessThan(bounds.logits);
        expect(Math.abs(result.loss - ref.loss), 'loss absolute error').toBeLessThan(bounds.loss);
        expectGradientsWithin(result, ref, bounds.grad);
      });
    }
  }
});
