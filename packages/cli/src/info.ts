// `lsp-offload info`: the adapter, its features and limits, Dawn toggles, wasm SIMD/threads, cores.
import { formatBytes, systemInfo, type SystemInfo } from '@lsp-offload/core';

const KEY_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
];

export function renderInfo(info: SystemInfo): string {
  const lines: string[] = [];
  if ('error' in info.gpu) {
    lines.push(`GPU: none (${info.gpu.error})`);
  } else {
    const g = info.gpu;
    lines.push(
      `GPU adapter: ${g.description || g.device} (vendor ${g.vendor || '?'}, ${g.architecture || '?'}${g.backend === 'unknown' ? '' : `, backend ${g.backend}`})`,
    );
    if (g.subgroupMinSize !== undefined)
      lines.push(`  subgroup size: ${g.subgroupMinSize}..${g.subgroupMaxSize}`);
    lines.push(`  features: ${g.features.join(', ')}`);
    lines.push('  limits:');
    for (const k of KEY_LIMITS) {
      const v = g.limits[k];
      if (v === undefined) continue;
      lines.push(`    ${k}: ${/Size$/.test(k) ? `${formatBytes(v)} (${v})` : v}`);
    }
    lines.push(`  dawn toggles: ${g.toggles.join(', ')}`);
  }
  lines.push(
    `WASM: simd128 ${info.wasm.simd128 ? 'yes' : 'NO'}, threads (shared memory) ${info.wasm.threads ? 'yes' : 'NO'}`,
  );
  lines.push(`CPU: ${info.wasm.cores} cores (${info.cpuModel}), ${formatBytes(info.hostMemoryBytes)} RAM`);
  lines.push(`Node: ${info.node}`);
  return lines.join('\n');
}

export async function infoCommand(opts: { json?: boolean }): Promise<number> {
  const info = await systemInfo();
  console.log(opts.json ? JSON.stringify(info, null, 2) : renderInfo(info));
  return 'error' in info.gpu ? 1 : 0;
}
