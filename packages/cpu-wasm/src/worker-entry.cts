// The script Piscina loads in each worker. Piscina first tries require() on its `filename`; on an ES
// module that goes through Node's require(esm) path, which can abort the whole process on an internal
// assertion (seen in CI on Node 20.20). This file is CommonJS, so require() stays plain, and the ESM
// worker is loaded through the ordinary dynamic import.
import type { KernelResult, KernelTask } from './protocol.js';

type Run = (task: KernelTask) => KernelResult;
const worker: Promise<{ default: Run }> = import('./worker.js');
// a start-up failure is reported by the first task that awaits it
worker.catch(() => undefined);

async function run(task: KernelTask): Promise<KernelResult> {
  return (await worker).default(task);
}

export = run;
