// Buffers that follow the parameters: the weights (../model/weights.ts) and RoPE table
// (../model/transformer.ts), the projector pairs (../projectors/projector-set.ts, uploadSparseProjector),
// the staging rings and the native mode's GPU AdamW state and dense gradients (../trainer/trainer.ts), and
// what each mode's gradient sink (../trainer/sinks.ts, ../model/dense-gradients.ts) and the lsp apply
// allocate per block.
import { listParameters, type LinearWeightSpec, type ModelConfig, type ParameterSpec } from '../hf/index.js';
import type { StepGeometry } from './activation-buffers.js';
import type { ResolvedPlanInput } from './plan-input.js';
import { layerPattern, mergeBuffers, tensorBuffer, type PlannedBuffer } from './planned-buffer.js';

/** The model's parameters split the way the trainer's update units split them. */
export interface ParameterLayout {
  all: ParameterSpec[];
  /** Per block: its linear weights (projected in lsp) and the rest (norms, biases). */
  blockLinears: LinearWeightSpec[][];
  blockOthers: ParameterSpec[][];
  /** Outside the blocks: embeddings, final norm, lm_head (the trainer's OUTER_UNIT). */
  outer: ParameterSpec[];
}

export function parameterLayout(config: ModelConfig): ParameterLayout {
  const all = listParameters(config);
  const blockLinears: LinearWeightSpec[][] = Array.from({ length: config.numLayers }, () => []);
  const blockOthers: ParameterSpec[][] = Array.from({ length: config.numLayers }, () => []);
  const outer: ParameterSpec[] = [];
  for (const s of all) {
    if (s.layer === null) outer.push(s);
    else if (s.role === 'linear') blockLinears[s.layer]!.push(s);
    else blockOthers[s.layer]!.push(s);
  }
  return { all, blockLinears, blockOthers, outer };
}

const f32Grad = (s: ParameterSpec): PlannedBuffer =>
  tensorBuffer(`grad ${layerPattern(s.name)}`, 'gradients', 'f32', s.shape);

/** Weights in their storage dtype, plus LLaMA's RoPE cos/sin table (f32, 'weights' like the weights). */
export function weightBuffers(
  config: ModelConfig,
  layout: ParameterLayout,
  run: ResolvedPlanInput,
): PlannedBuffer[] {
  const out = layout.all.map((s) => tensorBuffer(layerPattern(s.name), 'weights', run.weightDtype, s.shape));
  if (config.positions.kind === 'rope')
    out.push(
      tensorBuffer('RoPE cos/sin table', 'weights', 'f32', [config.maxPositions, config.headDim / 2, 2]),
    );
  return mergeBuffers(out);
}

/** The subspace size and non-zeros per row of a linear's projectors. */
export function projectorShape(spec: LinearWeightSpec, run: ResolvedPlanInput): { d: number; r: number } {
  return run.exactProjectors ? { d: spec.shape[0]!, r: 1 } : { d: run.rank, r: run.nnz };
}

/** lsp: each linear's pair L (stored rows x d) and R (stored cols x d), in uploadSparseProjector's 5 tensors. */
export function projectorBuffers(layout: ParameterLayout, run: ResolvedPlanInput): PlannedBuffer[] {
  const out: PlannedBuffer[] = [];
  for (const spec of layout.blockLinears.flat()) {
    const { d, r } = projectorShape(spec, run);
    for (const [side, rows] of [
      ['L', spec.shape[0]!],
      ['R', spec.shape[1]!],
    ] as const) {
      const label = `${layerPattern(spec.name)}.${side}`;
      out.push(tensorBuffer(`${label} positions, colEntry`, 'projectors', 'u32', [rows * r], 2));
      out.push(tensorBuffer(`${label} values, colValues`, 'projectors', 'f32', [rows * r], 2));
      out.push(tensorBuffer(`${label} colPtr`, 'projectors', 'u32', [d + 1]));
    }
  }
  return mergeBuffers(out);
}

/** lsp and zero: the DownloadRing and UploadRing staging buffers. */
export function stagingBuffers(run: ResolvedPlanInput): PlannedBuffer[] {
  const slot = (usage: 'download' | 'upload', label: string, count: number): PlannedBuffer => ({
    label,
    category: 'staging',
    usage,
    bytes: run.stagingChunkBytes,
    count,
  });
  return [
    slot('download', 'gradients to host (staging)', run.stagingSlots.down),
    slot('upload', 'updates to device (staging)', run.stagingSlots.up),
  ];
}

const DTYPE_BYTES = { f16: 2, f32: 4 } as const;

/**
 * The tensors one block's update moves each way, in bytes (each is its own transfer):
 * down lsp S in gradientDtype / zero gradients in the weight dtype, + gradients of norms and biases when
 * trained (lsp: gradientDtype, zero: f32), + the unit's header (a u32 count and a scale per fp16 tensor);
 * up lsp D in stepDtype / zero every parameter in the weight dtype, + trained norms and biases.
 */
export function blockTransfers(
  layout: ParameterLayout,
  layer: number,
  run: ResolvedPlanInput,
): { down: number[]; up: number[] } {
  const numel = (s: ParameterSpec) => s.shape.reduce((a, b) => a * b, 1);
  const down: number[] = [];
  const up: number[] = [];
  const sentBytes = run.mode === 'lsp' ? DTYPE_BYTES[run.gradientDtype] : 4;
  for (const spec of layout.blockLinears[layer]!) {
    if (run.mode === 'lsp') {
      const { d } = projectorShape(spec, run);
      down.push(d * d * sentBytes);
      up.push(d * d * DTYPE_BYTES[run.stepDtype]);
    } else {
      down.push(numel(spec) * DTYPE_BYTES[run.weightDtype]);
      up.push(numel(spec) * DTYPE_BYTES[run.weightDtype]);
    }
  }
  if (trainsNonLinear(run))
    for (const spec of layout.blockOthers[layer]!) {
      down.push(numel(spec) * sentBytes);
      up.push(numel(spec) * DTYPE_BYTES[run.weightDtype]);
    }
  const packed = run.mode === 'lsp' && run.gradientDtype === 'f16' ? down.length : 0;
  if (down.length) down.push(4 * (1 + packed));
  return { down, up };
}

/** Staging chunks of one block's transfers each way (a transfer is split into chunks of stagingChunkBytes). */
export function blockTransferChunks(
  layout: ParameterLayout,
  layer: number,
  run: ResolvedPlanInput,
): { down: number; up: number } {
  const { down, up } = blockTransfers(layout, layer, run);
  return { down: stagingChunks(down, run.stagingChunkBytes), up: stagingChunks(up, run.stagingChunkBytes) };
}

/** Staging chunks of a list of transfers (each is split into chunks on its own). */
export function stagingChunks(transferBytes: readonly number[], chunkBytes: number): number {
  return transferBytes.reduce((n, b) => n + Math.ceil(b / chunkBytes), 0);
}

/** native: a dense f32 gradient per parameter, kept across steps (DenseGradients). */
export function nativeGradientBuffers(layout: ParameterLayout): PlannedBuffer[] {
  return mergeBuffers(layout.all.map(f32Grad));
}

/** native: GPU AdamW m and v (f32) per parameter, and an f32 master copy of f16 weights. */
export function nativeOptimizerBuffers(layout: ParameterLayout, run: ResolvedPlanInput): PlannedBuffer[] {
  const perParam = run.weightDtype === 'f16' ? 3 : 2;
  return mergeBuffers(
    layout.all.map((s) =>
      tensorBuffer(
        `AdamW m, v${perParam === 3 ? ', master' : ''} ${layerPattern(s.name)}`,
        'optimizer',
        'f32',
        s.shape,
        perParam,
      ),
    ),
  );
}

/** Whether the mode computes gradients of the non-linear parameters (norms, biases, embeddings, lm_head). */
export function trainsNonLinear(run: ResolvedPlanInput): boolean {
  return run.mode !== 'lsp' || run.nonProjected === 'adamw';
}

/**
 * The gradients one block hands to the offloading pipeline, alive until its download is enqueued:
 * lsp: S [d, d] f32 per linear (+ dense f32 norms/biases when trained); zero: every parameter's dense
 * gradient, the linears' in the weights' dtype.
 */
export function blockOffloadGradients(
  layout: ParameterLayout,
  layer: number,
  run: ResolvedPlanInput,
): PlannedBuffer[] {
  const out: PlannedBuffer[] = [];
  for (const spec of layout.blockLinears[layer]!) {
    if (run.mode === 'lsp') {
      const { d } = projectorShape(spec, run);
      out.push(tensorBuffer(`S ${layerPattern(spec.name)}`, 'gradients', 'f32', [d, d]));
    } else {
      out.push(tensorBuffer(`grad ${layerPattern(spec.name)}`, 'gradients', run.weightDtype, spec.shape));
    }
  }
  if (trainsNonLinear(run)) out.push(...layout.blockOthers[layer]!.map(f32Grad));
  return out;
}

/**
 * lsp: the compression inputs A = X L and B = dY R ([T, d] per linear, in the activations' dtype: f16 in
 * mixed precision). Each pair goes back to the allocator right after its S is recorded, so at most the
 * largest linear's pair is alive at once.
 */
export function compressWorkspace(
  layout: ParameterLayout,
  layer: number,
  run: ResolvedPlanInput,
  g: StepGeometry,
): PlannedBuffer[] {
  const d = Math.max(0, ...layout.blockLinears[layer]!.map((spec) => projectorShape(spec, run).d));
  const dtype = run.precision === 'mixed' ? 'f16' : 'f32';
  return d ? [tensorBuffer('compress A, B (X L, dY R)', 'workspace', dtype, [g.tokens, d], 2)] : [];
}

/** lsp: the subspace steps D [d, d] of one block, from their upload until their apply. */
export function blockSteps(layout: ParameterLayout, layer: number, run: ResolvedPlanInput): PlannedBuffer[] {
  return layout.blockLinears[layer]!.map((spec) => {
    const { d } = projectorShape(spec, run);
    return tensorBuffer(`D ${layerPattern(spec.name)}`, 'gradients', run.stepDtype, [d, d]);
  });
}

/**
 * lsp: the temporaries of applying one linear's step (W += L D R^T): F = L D [rows, d] f32, D cast to f32
 * when it travels as f16, and with weight decay an f32 copy of W. They go back to the allocator as soon as
 * the apply is recorded, so one block's applies hold at most its largest linear's temporaries.
 */
export function applyWorkspace(
  layout: ParameterLayout,
  layer: number,
  run: ResolvedPlanInput,
): PlannedBuffer[] {
  let best: PlannedBuffer[] = [];
  let bestBytes = -1;
  for (const spec of layout.blockLinears[layer]!) {
    const { d } = projectorShape(spec, run);
    const rows = spec.shape[0]!;
    const out = [tensorBuffer('apply F = L D', 'workspace', 'f32', [rows, d])];
    if (run.stepDtype === 'f16') out.push(tensorBuffer('apply D as f32', 'workspace', 'f32', [d, d]));
    if (run.weightDecay > 0)
      out.push(tensorBuffer('apply weight-decay copy of W', 'workspace', 'f32', spec.shape));
    const bytes = out.reduce((a, b) => a + b.bytes * b.count, 0);
    if (bytes > bestBytes) {
      best = out;
      bestBytes = bytes;
    }
  }
  return best;
}

/** Every parameter outside the blocks whose gradient the backward makes (lm_head or the tied table first). */
export function outerGradientSpecs(config: ModelConfig, layout: ParameterLayout): ParameterSpec[] {
  return outerSpecs(config, layout, 'embeddings');
}

/** The gradients of the parameters outside the blocks that exist by a given point of the backward. */
export function outerGradients(
  config: ModelConfig,
  layout: ParameterLayout,
  upTo: 'lm_head' | 'final norm' | 'embeddings',
  /** The token table's gradient kept as at most this many touched rows (lsp, embedding gradient rows). */
  compact?: { name: string; rows: number },
): PlannedBuffer[] {
  return outerSpecs(config, layout, upTo).map((s) =>
    s.name === compact?.name
      ? tensorBuffer(`grad f32 ${s.name} (touched rows)`, 'gradients', 'f32', [
          compact.rows,
          ...s.shape.slice(1),
        ])
      : f32Grad(s),
  );
}

function outerSpecs(
  config: ModelConfig,
  layout: ParameterLayout,
  upTo: 'lm_head' | 'final norm' | 'embeddings',
): ParameterSpec[] {
  const lmHead = config.tieWordEmbeddings
    ? layout.outer.filter((s) => s.role === 'embedding' && s.module !== 'wpe')
    : layout.outer.filter((s) => s.role === 'lm_head');
  const finalNorm = layout.outer.filter((s) => s.role === 'norm' || s.role === 'bias');
  const embeddings = config.tieWordEmbeddings
    ? layout.outer.filter((s) => s.role === 'embedding' && s.module === 'wpe')
    : layout.outer.filter((s) => s.role === 'embedding');
  const specs = [...lmHead];
  if (upTo !== 'lm_head') specs.push(...finalNorm);
  if (upTo === 'embeddings') specs.push(...embeddings);
  return specs;
}
