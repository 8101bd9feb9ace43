// The passes of one step over the pool: the update (unchecked, or as one group with the read-only
// gradient check before it), and the count that names tensors with non-finite gradients.
import type { NonFiniteReport } from './errors.js';
import { checkedUpdateTasks, countNonFinitePass, updateTasks, type Spread } from './plan.js';
import type { GroupOptions, GroupResult, KernelPool } from './pool.js';
import type { KernelResult } from './protocol.js';
import type { TensorRecord } from './tensors.js';

function runAll(
  pool: KernelPool,
  tasks: readonly Float64Array[],
  hypers?: Float64Array,
): Promise<KernelResult[]> {
  return Promise.all(tasks.map((pieces) => pool.run(hypers ? { pieces, hypers } : { pieces })));
}

/** The tensors with NaN or infinite gradient elements, and how many each has. */
export async function nonFiniteGradients(
  pool: KernelPool,
  records: readonly TensorRecord[],
  spread: Spread,
): Promise<NonFiniteReport[]> {
  const pass = countNonFinitePass(records, spread);
  const counts = await runAll(pool, pass.tasks);
  const perRow = new Array<number>(records.length).fill(0);
  counts.forEach((c, t) => c.forEach((n, i) => (perRow[pass.rows[t]![i]!]! += n)));
  return records.map((r, row) => ({ name: r.name, count: perRow[row]! })).filter((x) => x.count > 0);
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

/** The AdamW update of every record, with one row of scalars per record in `hypers`. */
export async function update(
  pool: KernelPool,
  records: readonly TensorRecord[],
  spread: Spread,
  hypers: Float64Array,
): Promise<void> {
  await runAll(pool, updateTasks(records, spread), hypers);
}
