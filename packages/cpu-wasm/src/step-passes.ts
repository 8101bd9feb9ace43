// The passes of one step over the pool: the update (unchecked, or as one group with the read-only
// gradient check before it), and the count that names tensors with non-finite gradients.
import type { NonFiniteReport } from './errors.js';
import {
  checkedUpdateTasks,
  countNonFinitePass,
  streamUpdatePieces,
  updateTasks,
  type Spread,
} from './plan.js';
import type { GroupOptions, GroupResult, KernelPool } from './pool.js';
import type { KernelResult } from './protocol.js';
import type { TensorRecord } from './tensors.js';
import { workerTiming, type WorkerTiming } from './timing.js';

async function runAll(
  pool: KernelPool,
  tasks: readonly Float64Array[],
  hypers?: Float64Array,
): Promise<{ values: KernelResult[]; timing: WorkerTiming }> {
  const done = await Promise.all(
    tasks.map((pieces) => pool.runTimed(hypers ? { pieces, hypers } : { pieces })),
  );
  return { values: done.map((r) => r.values), timing: workerTiming(done.map((r) => r.timing)) };
}

/** The tensors with NaN or infinite gradient elements, and how many each has; the pass's worker times. */
export async function nonFiniteGradients(
  pool: KernelPool,
  records: readonly TensorRecord[],
  spread: Spread,
): Promise<{ tensors: NonFiniteReport[]; timing: WorkerTiming }> {
  const pass = countNonFinitePass(records, spread);
  const counts = await runAll(pool, pass.tasks);
  const perRow = new Array<number>(records.length).fill(0);
  counts.values.forEach((c, t) => c.forEach((n, i) => (perRow[pass.rows[t]![i]!]! += n)));
  const tensors = records.map((r, row) => ({ name: r.name, count: perRow[row]! })).filter((x) => x.count > 0);
  return { tensors, timing: counts.timing };
}

/**
 * The gradient check and the update in one dispatch: the sum of squares of all gradients (added in one
 * fixed order, whatever the thread count; finite exactly when every element is, since f64 does not
 * overflow), then the update unless `skipNonFinite` and it is not finite, clipped by `clip`.
 */
export function checkedUpdate(
  pool: KernelPool,
  records: readonly TensorRecord[],
  spread: Spread,
  options: GroupOptions,
): Promise<GroupResult> {
  return pool.runGroup(checkedUpdateTasks(records, spread), options);
}

/** The AdamW update of every record, with one row of scalars per record in `hypers`; its worker times. */
export async function update(
  pool: KernelPool,
  records: readonly TensorRecord[],
  spread: Spread,
  hypers: Float64Array,
): Promise<WorkerTiming> {
  return (await runAll(pool, updateTasks(records, spread), hypers)).timing;
}

/**
 * The same update through the pool's stream: fixed-size pieces any worker takes (balanced dynamically,
 * and started while the main thread is busy when earlier work is still running). The pieces' cuts do
 * not depend on the thread count, and no element's result depends on the cuts.
 */
export function streamUpdate(
  pool: KernelPool,
  records: readonly TensorRecord[],
  hypers: Float64Array,
): Promise<WorkerTiming> {
  return pool.runStream({ pieces: streamUpdatePieces(records), hypers });
}
