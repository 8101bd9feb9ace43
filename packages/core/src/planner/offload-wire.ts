// What sending a unit's gradients to the CPU allocates on the GPU (../trainer/gradient-wire.ts): the
// unit's header (u32: the non-finite count, one scale per packed tensor), the fp16 copies of f32
// gradients (lsp's gradientDtype 'f16'; the token embedding's as its touched rows), all alive
// until their downloads are enqueued; and the reductions' partial sums (the non-finite count over what
// travels, max |x| per packed tensor), gpu.scratch() workspace alive until the next submit.
import { REDUCE_VALUES_PER_THREAD } from '@lsp-offload/gpu-dawn/reference';
import type { ModelConfig, ParameterSpec } from '../hf/index.js';
import { projectorShape, trainsNonLinear, type ParameterLayout } from './parameter-buffers.js';
import type { ResolvedPlanInput } from './plan-input.js';
import { tensorBuffer, type PlannedBuffer } from './planned-buffer.js';

/** A gradient as the backward leaves it for the wire. */
export interface SentGradient {
  label: string;
  dtype: 'f32' | 'f16';
  shape: number[];
  /** The parameter's name, for gradients outside the blocks: the adapter check knows which are row-blocked. */
  name?: string;
}

/** The label of one of a gradient's buffers, ending in its parameter's name where it has one. */
const named = (label: string, s: SentGradient): string => (s.name ? `${label} ${s.name}` : label);

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** lsp sends f32 gradients as fp16 with per-tensor scales. */
export function halfGradients(run: ResolvedPlanInput): boolean {
  return run.mode === 'lsp' && run.gradientDtype === 'f16';
}

/** The token embedding when its gradient travels as touched rows (lsp, untied, trained). */
export function rowsSpec(config: ModelConfig, layout: ParameterLayout, run: ResolvedPlanInput) {
  if (run.mode !== 'lsp' || run.nonProjected !== 'adamw' || run.embeddingGradient !== 'rows')
    return undefined;
  if (config.tieWordEmbeddings) return undefined;
  return layout.outer.find((s) => s.role === 'embedding' && s.module !== 'wpe');
}

/** One block's gradients as produced: lsp S [d, d] f32 per linear; zero the linears in the weights' dtype. */
export function blockSent(layout: ParameterLayout, layer: number, run: ResolvedPlanInput): SentGradient[] {
  const out: SentGradient[] = layout.blockLinears[layer]!.map((spec) => {
    if (run.mode === 'lsp') {
      const { d } = projectorShape(spec, run);
      return { label: 'S', dtype: 'f32', shape: [d, d] };
    }
    return { label: 'grad', dtype: run.weightDtype, shape: [...spec.shape] };
  });
  if (trainsNonLinear(run))
    for (const s of layout.blockOthers[layer]!)
      out.push({ label: 'grad', dtype: 'f32', shape: [...s.shape] });
  return out;
}

/** The dense f32 gradients of parameters outside the blocks, as the wire takes them. */
export function outerSent(
  specs: readonly ParameterSpec[],
  rows: ParameterSpec | undefined,
  /** The most rows a step touches (every micro-batch's tokens, at most the vocabulary). */
  touchedCapacity: number,
): SentGradient[] {
  return specs.map((s) => {
    // the token table's gradient sent as rows is made as those rows only
    const touched = s === rows ? touchedCapacity : undefined;
    return {
      label: touched === undefined ? 'grad' : 'embedding rows',
      dtype: 'f32',
      shape: touched === undefined ? [...s.shape] : [touched, ...s.shape.slice(1)],
      name: s.name,
    };
  });
}

/** The dtype a gradient travels in. */
function onWireDtype(s: SentGradient, half: boolean): 'f32' | 'f16' {
  return half && s.dtype === 'f32' ? 'f16' : s.dtype;
}

function header(sent: readonly SentGradient[], half: boolean): PlannedBuffer {
  const packed = sent.filter((s) => half && s.dtype === 'f32').length;
  return tensorBuffer('unit header (non-finite count, scales)', 'gradients', 'u32', [1 + packed]);
}

function asSent(s: SentGradient, half: boolean): PlannedBuffer {
  const dtype = onWireDtype(s, half);
  return tensorBuffer(
    named(dtype === s.dtype ? `${s.label} ${s.dtype}` : `${s.label} as sent`, s),
    'gradients',
    dtype,
    s.shape,
  );
}

/** The unit's gradients as they travel, with its header, until their downloads are enqueued. */
export function wireInFlight(sent: readonly SentGradient[], run: ResolvedPlanInput): PlannedBuffer[] {
  if (!sent.length) return [];
  const half = halfGradients(run);
  return [header(sent, half), ...sent.map((s) => asSent(s, half))];
}

/**
 * The most the wire adds while it packs, beyond the gradients as produced (which it releases one by
 * one as their fp16 copies are made): the header and the largest fp16 copy.
 */
export function wirePacking(sent: readonly SentGradient[], run: ResolvedPlanInput): PlannedBuffer[] {
  if (!sent.length) return [];
  const half = halfGradients(run);
  const copies = sent.filter((s) => half && s.dtype === 'f32').map((s) => asSent(s, half));
  const largest = copies.reduce<PlannedBuffer | undefined>(
    (a, b) => (a && a.bytes >= b.bytes ? a : b),
    undefined,
  );
  return [header(sent, half), ...(largest ? [largest] : [])];
}

/** A unit's gradients as the backward left them. */
export function asProduced(sent: readonly SentGradient[]): PlannedBuffer[] {
  return sent.map((s) => tensorBuffer(named(`${s.label} ${s.dtype}`, s), 'gradients', s.dtype, s.shape));
}

/** A reduction's scratch over tensors of these sizes: the partials of each level above the result. */
function reduceScratch(label: string, dtype: 'u32' | 'f32', sizes: readonly number[]): PlannedBuffer[] {
  const per = REDUCE_VALUES_PER_THREAD;
  const total = sizes.reduce((a, n) => a + Math.max(1, Math.ceil(n / per)), 0);
  if (total === 1) return [];
  const out = [tensorBuffer(label, 'workspace', dtype, [total])];
  for (let n = Math.ceil(total / per); n > 1; n = Math.ceil(n / per))
    out.push(tensorBuffer(label, 'workspace', dtype, [n]));
  return out;
}

/**
 * The unit's reductions: scratch until the next submit. Its gradients are counted twice: as produced
 * into the step's count (the loss scale's, trainer/loss-scaler.ts) and as they travel into its header.
 */
export function wireScratch(sent: readonly SentGradient[], run: ResolvedPlanInput): PlannedBuffer[] {
  if (!sent.length) return [];
  const half = halfGradients(run);
  const sizes = sent.map((s) => numel(s.shape));
  const out = [
    ...reduceScratch('non-finite count partials (step)', 'u32', sizes),
    ...reduceScratch('non-finite count partials', 'u32', sizes),
  ];
  sent.forEach((s, i) => {
    if (!half || s.dtype !== 'f32') return;
    out.push(tensorBuffer('max |x| of a packed gradient', 'workspace', 'f32', [1]));
    out.push(...reduceScratch('max |x| partials', 'f32', [sizes[i]!]));
  });
  return out;
}
