// What the guard against non-finite gradients and the loss scale (trainer/loss-scaler.ts) hold on the
// GPU: their small state for the whole run, and the partial sums of each non-finite count, which live
// until the next submit (native: one count over every gradient after the backward; the offloading modes'
// counts per update unit are the wire's scratch, offload-wire.ts).
import { reduceWorkspace } from './activation-buffers.js';
import type { ParameterLayout } from './parameter-buffers.js';
import type { ResolvedPlanInput } from './plan-input.js';
import { tensorBuffer, type PlannedBuffer } from './planned-buffer.js';

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The step's non-finite count and the snapshot the host reads, and (mixed) the scale and its counters. */
export function lossScaleBuffers(run: ResolvedPlanInput): PlannedBuffer[] {
  const out = [
    tensorBuffer('non-finite gradient count', 'optimizer', 'u32', [1]),
    tensorBuffer('loss scale snapshot', 'optimizer', 'u32', [4]),
  ];
  if (run.precision === 'mixed')
    out.push(
      tensorBuffer('loss scale', 'optimizer', 'f32', [1]),
      tensorBuffer('loss scale counters', 'optimizer', 'u32', [2]),
    );
  return out;
}

const LABEL = 'non-finite count partial sums';

/** native: the count over every parameter's gradient. */
export function stepCountWorkspace(layout: ParameterLayout): PlannedBuffer[] {
  return reduceWorkspace(
    LABEL,
    layout.all.map((s) => numel(s.shape)),
  );
}
