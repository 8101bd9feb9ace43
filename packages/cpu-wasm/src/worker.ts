// Piscina worker: one kernels instance per shared memory (made the first time a task names it, each
// with this worker's own stack slot), then kernel calls on raw offsets. Tensor data is never copied.
import { workerData } from 'piscina';
import { workerStackTop } from './layout.js';
import {
  HYPER_STRIDE,
  OP,
  PIECE_STRIDE,
  type KernelResult,
  type KernelTask,
  type WorkerInit,
} from './protocol.js';
import { instantiateKernels, type KernelExports } from './wasm.js';

const init = workerData as WorkerInit;
const slot = Atomics.add(init.slotCounter, 0, 1);
if (slot >= init.maxSlots) throw new Error(`cpu-wasm worker stack slot ${slot} >= ${init.maxSlots}`);
const instances = new Map<number, KernelExports>();

function kernelsFor(task: KernelTask, id: number): KernelExports {
  let k = instances.get(id);
  if (!k) {
    const entry = task.memories.find(([i]) => i === id);
    if (!entry) throw new Error(`cpu-wasm task refers to memory ${id} but does not carry it`);
    k = instantiateKernels(entry[1], workerStackTop(init.heapBase, slot), init.module);
    instances.set(id, k);
  }
  return k;
}

export default function run(task: KernelTask): KernelResult {
  const { pieces, hypers } = task;
  const count = pieces.length / PIECE_STRIDE;
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * PIECE_STRIDE;
    const op = pieces[at]!;
    const k = kernelsFor(task, pieces[at + 1]!);
    const n = pieces[at + 2]!;
    const a = pieces[at + 3]!;
    const b = pieces[at + 4]!;
    const c = pieces[at + 5]!;
    const d = pieces[at + 6]!;
    const h = pieces[at + 7]! * HYPER_STRIDE;
    const e = pieces[at + 8]!;
    const hp = (j: number): number => hypers[j]!;
    switch (op) {
      case OP.ADAMW_F32G:
      case OP.ADAMW_F16G: {
        const f = op === OP.ADAMW_F32G ? k.adamw_f32g : k.adamw_f16g;
        f(
          a,
          b,
          c,
          d,
          n,
          hp(h),
          hp(h + 1),
          hp(h + 2),
          hp(h + 3),
          hp(h + 4),
          hp(h + 5),
          hp(h + 6),
          hp(h + 7),
          hp(h + 8),
        );
        break;
      }
      case OP.ADAMW_F32G_F16P:
      case OP.ADAMW_F16G_F16P: {
        const f = op === OP.ADAMW_F32G_F16P ? k.adamw_f32g_f16p : k.adamw_f16g_f16p;
        f(
          a,
          b,
          c,
          d,
          e,
          n,
          hp(h),
          hp(h + 1),
          hp(h + 2),
          hp(h + 3),
          hp(h + 4),
          hp(h + 5),
          hp(h + 6),
          hp(h + 7),
          hp(h + 8),
        );
        break;
      }
      case OP.STEP_F32G_F32O:
      case OP.STEP_F32G_F16O:
      case OP.STEP_F16G_F32O:
      case OP.STEP_F16G_F16O: {
        const f = [
          k.adamw_step_f32g_f32o,
          k.adamw_step_f32g_f16o,
          k.adamw_step_f16g_f32o,
          k.adamw_step_f16g_f16o,
        ][op - OP.STEP_F32G_F32O]!;
        // no weight decay in step-only mode: skip the decay field (h + 4)
        f(a, b, c, d, n, hp(h), hp(h + 1), hp(h + 2), hp(h + 3), hp(h + 5), hp(h + 6), hp(h + 7), hp(h + 8));
        break;
      }
      case OP.SUM_SQUARES_F32:
        out[i] = k.sum_squares_f32(a, n);
        break;
      case OP.SUM_SQUARES_F16:
        out[i] = k.sum_squares_f16(a, n);
        break;
      case OP.COUNT_NONFINITE_F32:
        out[i] = k.count_nonfinite_f32(a, n) >>> 0;
        break;
      case OP.COUNT_NONFINITE_F16:
        out[i] = k.count_nonfinite_f16(a, n) >>> 0;
        break;
      case OP.COPY_F32:
        k.copy_f32(a, b, n);
        break;
      case OP.F16_TO_F32:
        k.f16_to_f32(a, b, n);
        break;
      case OP.F32_TO_F16:
        k.f32_to_f16(a, b, n);
        break;
      case OP.AXPY_F32:
        k.axpy_f32(a, b, n, hp(h));
        break;
      default:
        throw new Error(`cpu-wasm worker: unknown opcode ${op}`);
    }
  }
  return out;
}
