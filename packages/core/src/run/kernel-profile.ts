// Where the GPU time of a step goes, by kernel family (matmul, attention, norms, ...): every dispatch is
// recorded in a compute pass of its own with timestamp queries around it. That serialises the dispatches
// and adds a pass boundary to each, so the totals are not the step's time; the shares are the point.
import { GpuTimer, type DispatchArgs, type GpuRuntime } from '@lsp-offload/gpu-dawn';

export interface KernelFamilyTime {
  family: string;
  dispatches: number;
  gpuMs: number;
  /** Of the profiled GPU time, 0..1. */
  share: number;
}

export interface KernelProfile {
  /** False where the adapter has no timestamp queries (nothing was timed). */
  supported: boolean;
  families: KernelFamilyTime[];
  /** Dispatches whose pass found no free timestamp query (left out of the table). */
  droppedPasses: number;
}

const DTYPES = new Set(['f16', 'f32', 'i32', 'u32']);

/** A dispatch's family from its pipeline label: 'attention.forward.f32.d64...' -> 'attention.forward'. */
export function kernelFamily(pipelineLabel: string): string {
  const [first = 'unlabelled', second] = pipelineLabel.split(/[:.(]/);
  return second && /^[a-zA-Z]+$/.test(second) && !DTYPES.has(second) ? `${first}.${second}` : first;
}

/**
 * Holds the runtime's GPU timer while it lives, so create it before anything that would take the timer
 * (a Trainer then runs without its step timer); measure() times each dispatch of `work` on its own.
 */
export class KernelProfiler {
  private readonly timer: GpuTimer;
  private readonly dispatches = new Map<string, number>();

  constructor(private readonly gpu: GpuRuntime) {
    this.timer = new GpuTimer(gpu, { capacityPasses: 2048, keepOccurrences: 1 });
  }

  async measure(work: () => Promise<unknown>): Promise<KernelProfile> {
    const gpu = this.gpu;
    const dispatch = gpu.dispatch;
    gpu.dispatch = (args: DispatchArgs) => {
      const family = kernelFamily(args.pipeline.label);
      this.dispatches.set(family, (this.dispatches.get(family) ?? 0) + 1);
      this.timer.begin(family);
      dispatch.call(gpu, args);
      this.timer.end(family);
    };
    try {
      await work();
    } finally {
      gpu.dispatch = dispatch;
    }
    await this.timer.settle();
    const report = this.timer.report();
    const total = report.regions.reduce((s, r) => s + r.totalMs, 0);
    const families = report.regions
      .map((r) => ({
        family: r.name,
        dispatches: this.dispatches.get(r.name) ?? r.count,
        gpuMs: r.totalMs,
        share: total > 0 ? r.totalMs / total : 0,
      }))
      .sort((a, b) => b.gpuMs - a.gpuMs);
    return { supported: report.supported, families, droppedPasses: report.droppedPasses };
  }

  destroy(): void {
    this.timer.destroy();
  }
}

/** The table of bench.txt: family, dispatches, GPU ms, share. */
export function formatKernelProfile(title: string, p: KernelProfile): string {
  if (!p.supported) return `${title}: no timestamp queries on this adapter, nothing timed`;
  const lines = [
    `${title} (one timed pass per dispatch: shares, not step time${p.droppedPasses ? `; ${p.droppedPasses} passes not timed` : ''})`,
    `  ${'kernel family'.padEnd(28)}${'dispatches'.padStart(11)}${'GPU ms'.padStart(12)}${'share'.padStart(9)}`,
  ];
  for (const f of p.families)
    lines.push(
      `  ${f.family.padEnd(28)}${String(f.dispatches).padStart(11)}${f.gpuMs.toPrecision(4).padStart(12)}${`${(100 * f.share).toFixed(1)} %`.padStart(9)}`,
    );
  return lines.join('\n');
}
