// Against torch.optim.AdamW: fixtures/adamw_torch.safetensors is made by fixtures/make_adamw_fixture.py
// on a machine with PyTorch and committed. A missing fixture fails (never skips).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AdamW, decodeSafetensors, type DecodedSafetensors, type HyperParams } from '../src/index.js';
import { rms } from './reference.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/adamw_torch.safetensors', import.meta.url));
const MAKE = 'python3 packages/cpu-wasm/fixtures/make_adamw_fixture.py packages/cpu-wasm/fixtures';

interface TorchGroup {
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
}

interface FixtureCase {
  name: string;
  steps: number;
  grad_dtype: 'F32' | 'F16';
  max_grad_norm: number | null;
  groups: Record<string, TorchGroup>;
  tensors: Array<{ key: string; length: number; group: string }>;
}

function hyper(g: TorchGroup): HyperParams {
  return { lr: g.lr, betas: g.betas, eps: g.eps, weightDecay: g.weight_decay };
}

function tensor(file: DecodedSafetensors, name: string): Uint8Array {
  const t = file.tensors.get(name);
  if (!t) throw new Error(`fixture lacks tensor "${name}"; regenerate it: ${MAKE}`);
  return new Uint8Array(t.data); // a copy: safetensors data need not be aligned for typed arrays
}

const f32 = (file: DecodedSafetensors, name: string): Float32Array =>
  new Float32Array(tensor(file, name).buffer);
const u16 = (file: DecodedSafetensors, name: string): Uint16Array =>
  new Uint16Array(tensor(file, name).buffer);

/**
 * Worst |ours - torch| / (|torch| + floor). Both sides are fp32 AdamW with the same formula but not the
 * same operation order (torch: lerp for m, division by sqrt(bc2)), so a few ulps apart.
 */
function worst(ours: Float32Array, torch: Float32Array, floor: number): number {
  let w = 0;
  for (let i = 0; i < torch.length; i++)
    w = Math.max(w, Math.abs(ours[i]! - torch[i]!) / (Math.abs(torch[i]!) + floor));
  return w;
}

describe('torch.optim.AdamW fixture', () => {
  const present = existsSync(FIXTURE);

  it('is committed', () => {
    if (!present)
      throw new Error(
        `missing ${FIXTURE}: generate it on a machine with PyTorch with \`${MAKE}\` and commit it`,
      );
  });
  if (!present) return;

  const file = decodeSafetensors(readFileSync(FIXTURE));
  const cases = JSON.parse(file.metadata['cases'] ?? '[]') as FixtureCase[];

  it('has the expected format and cases', () => {
    expect(file.metadata['format']).toBe('lsp-offload-cpu-wasm/adamw-torch-fixture@1');
    expect(cases.map((c) => c.name)).toEqual(['groups', 'fp16_clip']);
  });

  for (const c of cases) {
    it(`matches torch ${file.metadata['torch']} on case "${c.name}" after every step`, async () => {
      const { default: base, ...others } = c.groups;
      if (!base) throw new Error(`fixture case ${c.name} has no "default" group`);
      const groups: Record<string, HyperParams> = {};
      for (const [g, hp] of Object.entries(others)) groups[g] = hyper(hp);
      const opt = new AdamW({
        threads: 2,
        ...hyper(base),
        groups,
        ...(c.max_grad_norm !== null ? { maxGradNorm: c.max_grad_norm } : {}),
        minElementsPerThread: 32,
      });
      try {
        const gradDtype = c.grad_dtype === 'F16' ? 'f16' : 'f32';
        for (const t of c.tensors)
          opt.addParam(t.key, f32(file, `${c.name}.${t.key}.init`), { group: t.group, gradDtype });
        for (let k = 0; k < c.steps; k++) {
          for (const t of c.tensors) {
            const g = `${c.name}.${t.key}.grad.${k}`;
            opt.setGrad(t.key, gradDtype === 'f16' ? u16(file, g) : f32(file, g));
          }
          const report = await opt.step();
          if (c.max_grad_norm !== null) expect(report.clipCoef, 'the case is meant to clip').toBeLessThan(1);
          for (const t of c.tensors) {
            const lr = c.groups[t.group]!.lr;
            const want = f32(file, `${c.name}.${t.key}.param.${k}`);
            const err = worst(opt.param(t.key), want, lr); // relative, floored at one update's size
            expect(err, `${c.name}.${t.key} params after step ${k + 1}`).toBeLessThan(1e-6);
          }
        }
        for (const t of c.tensors)
          for (const [s, view] of [
            ['exp_avg', opt.expAvg(t.key)],
            ['exp_avg_sq', opt.expAvgSq(t.key)],
          ] as const) {
            const want = f32(file, `${c.name}.${t.key}.${s}`);
            expect(worst(view, want, rms(want)), `${c.name}.${t.key}.${s}`).toBeLessThan(1e-5);
          }
      } finally {
        await opt.destroy();
      }
    });
  }
});
