// The passes of one step over the pool: the read-only gradient check (sum of squares, and counting
// when something is not finite) and the update itself.
import type { NonFiniteReport } from './errors.js';
import { countNonFinitePass, sumSquaresPass, updateTasks, type Spread } from './plan.js';
import type { KernelPool } from './pool.js';
import type { KernelResult } from './protocol.js';
import type { TensorRecord } from './tensors.js';

function runAll(
  pool: KernelPool,
  tasks: readonly Float64Array[],
  hypers?: Float64Array,
): Promise<KernelResult[]> {
  return Promise.all(tasks.map((pieces) => pool.run(hypers ? { pieces, hypers } : { pieces })));
}

/**
 * Sum of squares of all the gradients, added in one fixed order (blocks in task order, tasks in order)
 * whatever the thread count. Finite exactly when every gradient element is (f64 does not overflow).
 */
export async function gradientSumOfSquares(
  pool: KernelPool,
  records: readonly TensorRecord[],
  spread: Spread,
): Promise<number> {
  const sums = await runAll(pool, sumSquaresPass(records, spread).tasks);
  let total = 0;
  for (const s of sums) for (const x of s) total += x;
  return total;
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

/** The AdamW update of every record, with one row of scalars per record in `hypers`. */
export async function update(
  pool: KernelPool,
  records: readonly TensorRecord[],
  spread: Spread,
  hypers: Float64Array,
): Promise<void> {
  await runAll(pool, updateTasks(records, spread), hypers);
}
