// What this machine offers lsp-offload: the GPU Dawn finds, and the CPU side the WASM optimizer uses.
import { GpuContext, type AdapterReport } from '@lsp-offload/gpu-dawn';
import { wasmFeatures, type WasmFeatures } from '@lsp-offload/cpu-wasm';
import { cpus, totalmem } from 'node:os';

export interface SystemInfo {
  gpu: AdapterReport | { error: string };
  wasm: WasmFeatures;
  cpuModel: string;
  hostMemoryBytes: number;
  node: string;
}

/** Probe GPU and CPU. A missing adapter is reported, not thrown, so `info` can say what is wrong. */
export async function systemInfo(): Promise<SystemInfo> {
  let gpu: SystemInfo['gpu'];
  try {
    const ctx = await GpuContext.create();
    gpu = ctx.report;
    ctx.destroy();
  } catch (e) {
    gpu = { error: (e as Error).message };
  }
  return {
    gpu,
    wasm: wasmFeatures(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    hostMemoryBytes: totalmem(),
    node: process.version,
  };
}
