// Host (CPU) memory of the offloading modes: the WASM AdamW's state in shared memory (cpu-wasm's AdamW:
// step-only tensors hold grad, m, v and the step; param tensors hold grad, an fp32 master, m and v) and
// the host copies of the projectors. Transfers land straight in that state, so there is no other copy.
import type { ParameterLayout } from './parameter-buffers.js';
import { projectorShape } from './parameter-buffers.js';
import type { ResolvedPlanInput } from './plan-input.js';

export interface HostMemoryItem {
  label: string;
  bytes: number;
}

export interface HostMemoryPlan {
  totalBytes: number;
  items: HostMemoryItem[];
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const dtypeBytes = (dtype: 'f16' | 'f32'): number => (dtype === 'f16' ? 2 : 4);

export function planHostMemory(layout: ParameterLayout, run: ResolvedPlanInput): HostMemoryPlan {
  const items: HostMemoryItem[] = [];
  if (run.mode === 'lsp') {
    let state = 0;
    let projectors = 0;
    for (const spec of layout.blockLinears.flat()) {
      const { d, r } = projectorShape(spec, run);
      // grad (S) in its transfer dtype, m, v f32, the step D in its transfer dtype
      state += d * d * (dtypeBytes(run.gradientDtype) + 2 * 4 + dtypeBytes(run.stepDtype));
      // positions u32 + values f32 of both sides
      projectors += (spec.shape[0]! + spec.shape[1]!) * r * 8;
    }
    items.push({ label: 'CPU AdamW subspace state (S, m, v, D per projected layer)', bytes: state });
    items.push({ label: 'projector pairs (host copies)', bytes: projectors });
    if (run.nonProjected === 'adamw') {
      const others = layout.all.filter((s) => s.role !== 'linear');
      const n = others.reduce((a, s) => a + numel(s.shape), 0);
      // + an fp16 copy of the params for fp16 weights (what is uploaded)
      const copy = run.weightDtype === 'f16' ? 2 : 0;
      items.push({
        label: 'CPU AdamW of non-projected parameters (grad, fp32 master, m, v)',
        bytes: n * (12 + dtypeBytes(run.gradientDtype) + copy),
      });
    }
  } else if (run.mode === 'zero') {
    let bytes = 0;
    for (const s of layout.all) {
      const gradBytes = s.role === 'linear' ? dtypeBytes(run.weightDtype) : 4;
      bytes += numel(s.shape) * (3 * 4 + gradBytes + (run.weightDtype === 'f16' ? 2 : 0));
    }
    items.push({
      label: 'CPU AdamW state (fp32 master, m, v, gradient and the fp16 copy per parameter)',
      bytes,
    });
  }
  return { totalBytes: items.reduce((a, i) => a + i.bytes, 0), items };
}
