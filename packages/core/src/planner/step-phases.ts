// One training step as a sequence of snapshots ("phases") of the GPU buffers alive at the moments where
// memory peaks: each block's forward, the LM head, the final norm's backward, each block's backward, the
// embedding backward, and the lsp update slots. It follows Trainer.trainStep and Transformer.run:
//   - checkpointing keeps only block inputs and recomputes one block's tape right before its backward;
//     without it every block's tape stays until its backward;
//   - gpu.scratch() workspace lives until the next submit: the model submits at every block boundary of
//     the forward and the backward and after the LM head (the lsp compress and apply temporaries are
//     plain tensors freed right away);
//   - gradients of the offloading modes live until their download is enqueued: right away when the
//     download ring has slots for leadBlocks + 1 blocks' chunks (the default), otherwise up to leadBlocks
//     blocks behind the one being computed (the recorder waits for block l + leadBlocks' download); in
//     flight they are as they travel (offload-wire.ts: fp16 copies, the header), and sending a unit
//     holds its gradients as produced and as sent at once, plus reduction partials until the next
//     submit (the next block boundary: the unit's non-finite counts, its max |x|);
//   - deferred lsp updates hold their step D from its upload, UPLOAD_AHEAD_BLOCKS blocks ahead of the
//     block's next forward (one more block's may still be going up from the end of the backward);
//   - native counts every gradient for non-finite values after the backward (reduce partials until the
//     next submit);
//   - mixed precision stores matmul operands f16 (activation-buffers.ts), and with checkpointing the kept
//     block inputs as f16 copies (the block being computed has its f32 input; the recompute reads its
//     copy back into an f32 tensor).
import type { ModelConfig } from '../hf/index.js';
import {
  biasGradWorkspace,
  blockBackwardTemporaries,
  blockTape,
  embeddingBackwardWorkspace,
  finalNormOutputs,
  hiddenState,
  lossHeadBuffers,
  normBackwardWorkspace,
  stepInputs,
  type StepGeometry,
} from './activation-buffers.js';
import {
  applyWorkspace,
  blockOffloadGradients,
  blockSteps,
  blockTransferChunks,
  compressWorkspace,
  nativeGradientBuffers,
  nativeOptimizerBuffers,
  outerGradients,
  outerGradientSpecs,
  projectorBuffers,
  stagingBuffers,
  trainsNonLinear,
  weightBuffers,
  type ParameterLayout,
} from './parameter-buffers.js';
import {
  blockSent,
  outerSent,
  rowsSpec,
  wireInFlight,
  wirePacking,
  wireScratch,
  asProduced,
} from './offload-wire.js';
import { lossScaleBuffers, stepCountWorkspace } from './guard-buffers.js';
import { UPLOAD_AHEAD_BLOCKS, type ResolvedPlanInput } from './plan-input.js';
import { gpuTimerBuffers } from './timer-buffers.js';
import { mergeBuffers, tensorBuffer, times, type PlannedBuffer } from './planned-buffer.js';

export interface Phase {
  name: string;
  buffers: PlannedBuffer[];
}

/**
 * `from` -> the merged buffers of blocks from .. count - 1 (none past the end), built once back to front:
 * phases that list every block above them then cost one short merged list each, not a pass over all
 * blocks (quadratic in the layers, minutes and gigabytes for a 10000-layer config).
 */
function blocksFrom(
  count: number,
  perBlock: (layer: number) => PlannedBuffer[],
): (from: number) => PlannedBuffer[] {
  const suffix: PlannedBuffer[][] = [[]];
  for (let l = count - 1; l >= 0; l--) suffix.push(mergeBuffers([...perBlock(l), ...suffix.at(-1)!]));
  return (from) => suffix[count - Math.min(count, Math.max(0, from))]!;
}

/** Blocks [from, to] (inclusive, clipped to the model), as a list of layer indices. */
function blocks(from: number, to: number, numLayers: number): number[] {
  const out: number[] = [];
  for (let l = Math.max(0, from); l <= Math.min(numLayers - 1, to); l++) out.push(l);
  return out;
}

export function stepPhases(
  config: ModelConfig,
  layout: ParameterLayout,
  run: ResolvedPlanInput,
  g: StepGeometry,
): Phase[] {
  const L = config.numLayers;
  const { mode } = run;
  const offload = mode !== 'native';
  const wantsGrads = trainsNonLinear(run);
  const op = run.precision === 'mixed' ? 'f16' : 'f32';

  // ---- alive for the whole run ----
  const persistent: PlannedBuffer[] = [...weightBuffers(config, layout, run)];
  if (mode === 'lsp') persistent.push(...projectorBuffers(layout, run));
  if (offload) persistent.push(...stagingBuffers(run));
  persistent.push(...gpuTimerBuffers(), ...lossScaleBuffers(run));
  if (mode === 'native')
    persistent.push(...nativeGradientBuffers(layout), ...nativeOptimizerBuffers(layout, run));
  // merged (per-layer buffers share a label): every phase lists these, so with thousands of layers an
  // unmerged list in each of 2 x layers phases would take gigabytes
  const always = mergeBuffers([...persistent, ...stepInputs(g)]);

  // ---- per-block pieces ----
  const tape = blockTape(config, g, op);
  const keptDtype = run.checkpointing ? op : 'f32';
  /** The block inputs kept for the backward (f16 copies in mixed precision with checkpointing). */
  const x = (count: number): PlannedBuffer[] =>
    count > 0 ? [hiddenState(config, g, 'block inputs (kept)', count, keptDtype)] : [];
  /** One f32 residual-stream tensor: the input of the block being computed, or the final hidden state. */
  const residual = (label: string): PlannedBuffer[] => [hiddenState(config, g, label)];
  /** The recompute's f32 input, read back from a kept f16 copy. */
  const recomputeInput = keptDtype === 'f32' ? [] : residual('block input (recompute)');
  const gradWorkspace = (layer: number): PlannedBuffer[] => {
    if (!wantsGrads) return [];
    const others = layout.blockOthers[layer]!;
    const norms = others.filter((s) => s.role === 'norm').length;
    const out: PlannedBuffer[] = norms ? [normBackwardWorkspace(config, g, norms)] : [];
    // a linear's bias goes through biasGrad (columnSum); a LayerNorm's bias comes with its weight
    const linears = new Set(layout.blockLinears[layer]!.map((s) => s.name));
    for (const s of others)
      if (s.role === 'bias' && linears.has(s.name.replace(/\.bias$/, '.weight')))
        out.push(...biasGradWorkspace(g, s.shape[0]!));
    return out;
  };
  const sinkWork = (layer: number): PlannedBuffer[] => [
    ...gradWorkspace(layer),
    ...(mode === 'lsp' ? compressWorkspace(layout, layer, run, g) : []),
  ];
  // a block's gradients as its backward makes them, and as they travel once sent
  const offloadGrads = (layers: number[]): PlannedBuffer[] =>
    offload ? layers.flatMap((l) => blockOffloadGradients(layout, l, run)) : [];
  // (the synchronous reference sends nothing before the backward ends)
  const sentGrads = (layers: number[]): PlannedBuffer[] =>
    !offload
      ? []
      : run.pipelined
        ? layers.flatMap((l) => wireInFlight(blockSent(layout, l, run), run))
        : offloadGrads(layers);
  const sendScratch = (l: number): PlannedBuffer[] =>
    offload && run.pipelined && l < L ? wireScratch(blockSent(layout, l, run), run) : [];
  let downChunks = 0;
  for (let l = 0; l < L; l++) downChunks = Math.max(downChunks, blockTransferChunks(layout, l, run).down);
  // blocks above the current one whose gradients may still wait for a free staging slot
  const gradientLag = run.stagingSlots.down >= (run.leadBlocks + 1) * downChunks ? 0 : run.leadBlocks;

  // ---- lsp updates deferred to the next forward: the lowest `deferredBlocks` blocks ----
  const deferred = mode === 'lsp' && run.pipelined ? run.deferredBlocks : 0;
  // their D go up only UPLOAD_AHEAD_BLOCKS blocks ahead of the forward, plus one block whose upload the
  // end of the backward found under way: at most that many blocks' D above the block being computed
  const pendingSteps = (above: number): PlannedBuffer[] =>
    blocks(above + 1, Math.min(deferred - 1, above + 1 + UPLOAD_AHEAD_BLOCKS), L).flatMap((l) =>
      blockSteps(layout, l, run),
    );
  const offloadGradsFrom = blocksFrom(offload && !run.pipelined ? L : 0, (l) =>
    blockOffloadGradients(layout, l, run),
  );
  // a deferred apply's temporaries are freed as soon as it is recorded, right before the block's forward
  const forwardApplyScratch = (l: number): PlannedBuffer[] =>
    l < deferred ? applyWorkspace(layout, l, run) : [];
  const allForwardApplyScratch: PlannedBuffer[] = [];

  const phases: Phase[] = [];
  const add = (name: string, ...parts: PlannedBuffer[][]): void => {
    phases.push({ name, buffers: parts.flat() });
  };

  // ---- forward ----
  if (deferred > 0)
    add('step start: deferred updates (D) waiting', always, residual('block input'), pendingSteps(-1));
  for (let l = 0; l < L; l++) {
    const keptTapes = run.checkpointing ? [] : times(tape, l);
    add(
      `forward block ${l}`,
      always,
      x(l),
      residual('block input'),
      keptTapes,
      tape,
      [hiddenState(config, g, 'block output')],
      pendingSteps(l),
      forwardApplyScratch(l),
    );
  }
  const forwardKept = [
    ...x(L),
    ...residual('final hidden state'),
    ...(run.checkpointing ? [] : times(tape, L)),
  ];

  // ---- LM head and loss ----
  const headGrads = offload && wantsGrads ? outerGradients(config, layout, 'lm_head') : [];
  const finalGrads = offload && wantsGrads ? outerGradients(config, layout, 'final norm') : [];
  const dxf = [hiddenState(config, g, 'dxf')];
  add(
    'LM head + cross-entropy',
    always,
    forwardKept,
    allForwardApplyScratch,
    finalNormOutputs(config, g, op),
    dxf,
    lossHeadBuffers(config, g, op),
    headGrads,
  );
  const finalNormWork = wantsGrads ? [normBackwardWorkspace(config, g)] : [];
  add(
    'final norm backward',
    always,
    forwardKept,
    allForwardApplyScratch,
    finalNormOutputs(config, g, op),
    dxf,
    [hiddenState(config, g, 'dx (block gradient)')],
    finalNormWork,
    finalGrads,
  );

  // ---- blocks, last to first ----
  // Workspace not yet freed by a submit: this block's (and, for the top block, the final norm's).
  const dx = [hiddenState(config, g, 'dx (block gradient)')];
  for (let l = L - 1; l >= 0; l--) {
    const kept = [...x(l + 1), ...recomputeInput, ...(run.checkpointing ? [] : times(tape, l))];
    const scratch = [...sinkWork(l), ...(l === L - 1 ? [...allForwardApplyScratch, ...finalNormWork] : [])];
    // pipelined: blocks l+1 .. l+leadBlocks may still wait for their download; synchronous: all above
    const inFlight = run.pipelined ? sentGrads(blocks(l + 1, l + gradientLag, L)) : offloadGradsFrom(l + 1);
    // pipelined lsp: an update applied at the last block boundary (its D and apply scratch), for the
    // blocks whose updates are not deferred to the next forward
    const applied =
      mode === 'lsp' && run.pipelined && l < L - 1 && l + 1 >= deferred
        ? [...blockSteps(layout, l + 1, run), ...applyWorkspace(layout, l + 1, run)]
        : [];
    add(
      `backward block ${l}`,
      always,
      kept,
      dx,
      tape,
      blockBackwardTemporaries(config, g, op),
      offloadGrads([l]),
      inFlight,
      sendScratch(l + 1),
      scratch,
      applied,
      finalGrads,
    );
    if (offload && run.pipelined) {
      const sending = (name: string, ...own: PlannedBuffer[][]) =>
        add(name, always, kept, dx, inFlight, ...own, sendScratch(l), applied, finalGrads);
      sending(
        `sending block ${l}'s gradients`,
        offloadGrads([l]),
        wirePacking(blockSent(layout, l, run), run),
      );
      sending(`block ${l}'s gradients sent`, sentGrads([l]));
    }
  }

  // ---- embedding backward ----
  const embedScratch = wantsGrads ? embeddingBackwardWorkspace(config, g, true) : [];
  const inFlight = run.pipelined ? blocks(0, gradientLag - 1, L) : blocks(0, L - 1, L);
  const compactRows = rowsSpec(config, layout, run);
  // the rows every micro-batch of the step touches, at most
  const touchedCapacity = compactRows ? Math.min(compactRows.shape[0]!, g.tokens * run.gradAccum) : 0;
  const compact = compactRows && { name: compactRows.name, rows: touchedCapacity };
  // each token's row among the touched ones, for the embedding backward (one tensor per micro-batch)
  const rowIds = compact
    ? Array.from({ length: run.gradAccum }, () =>
        tensorBuffer('embedding row ids', 'gradients', 'i32', [g.tokens]),
      )
    : [];
  const outerGrads = offload && wantsGrads ? outerGradients(config, layout, 'embeddings', compact) : [];
  add(
    'embedding backward',
    always,
    dx,
    embedScratch,
    sentGrads(inFlight),
    sendScratch(0),
    outerGrads,
    rowIds,
  );
  // the gradients of the units after the backward, sent one unit after the other: the embeddings, then
  // the head (the trainer's OUTER_UNIT, then HEAD_UNIT); the synchronous
  // reference sends the head, every block, then the embeddings
  if (offload) {
    const specs = wantsGrads ? outerGradientSpecs(config, layout) : [];
    const rows = rowsSpec(config, layout, run);
    const embeddings = outerSent(
      specs.filter((s) => s.role === 'embedding'),
      rows,
      touchedCapacity,
    );
    const head = outerSent(
      specs.filter((s) => s.role !== 'embedding'),
      rows,
      touchedCapacity,
    );
    const everyBlock = blocks(0, L - 1, L).map((l) => blockSent(layout, l, run));
    const order = run.pipelined ? [embeddings, head] : [head, ...everyBlock.reverse(), embeddings];
    const earlier = run.pipelined ? sentGrads(inFlight) : [];
    const scratch = order.flatMap((unit) => wireScratch(unit, run));
    const sent: PlannedBuffer[] = [];
    order.forEach((unit, i) => {
      const waiting = order.slice(i + 1).flatMap((u) => asProduced(u));
      const name = unit === embeddings ? 'the embeddings' : unit === head ? 'the head' : 'a block';
      add(
        `sending ${name}`,
        always,
        earlier,
        sent,
        asProduced(unit),
        wirePacking(unit, run),
        waiting,
        scratch,
      );
      sent.push(...wireInFlight(unit, run));
    });
    add('every unit sent', always, earlier, sent, scratch);
  }

  // ---- native: the optimizer step, after the non-finite count over every gradient ----
  if (mode === 'native')
    add(
      'optimizer step: non-finite count',
      persistent,
      stepInputs(g).filter((b) => b.label === 'loss'),
      stepCountWorkspace(layout),
    );

  // ---- the synchronous reference applies every update after the backward ----
  if (mode === 'lsp' && !run.pipelined) {
    const all = blocks(0, L - 1, L);
    add(
      'synchronous updates: every step D',
      persistent,
      all.flatMap((l) => blockSteps(layout, l, run)),
    );
    add(
      'synchronous updates: every apply',
      persistent,
      all.flatMap((l) => applyWorkspace(layout, l, run)),
    );
  }
  return phases;
}
