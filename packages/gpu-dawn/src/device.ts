// Device setup: find an adapter (high-performance first), turn on the Dawn toggles that expose fp16 and
// subgroup-matrix on NVIDIA, request the features and limits kernels need, and report what was found.
import { create, globals } from 'webgpu';

/** Dawn instance toggles we use. f16 on NVIDIA's Vulkan driver is hidden unless asked for. */
export const DAWN_TOGGLES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'] as const;

/**
 * Dawn toggles we turn off. Timestamp quantization (a browser anti-fingerprinting measure) rounds GPU
 * timestamps to 65.5 us, too coarse to time single kernels.
 */
export const DAWN_DISABLED_TOGGLES = ['timestamp_quantization'] as const;

/** Features kernels use when present; a missing one selects a fallback kernel, never an error. */
export const OPTIONAL_FEATURES: readonly GPUFeatureName[] = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
  'chromium-experimental-subgroup-matrix' as GPUFeatureName,
];

/** Limits we raise to the adapter's maximum (defaults are the spec minimums: 128 MiB per binding). */
const RAISED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export interface GpuOptions {
  powerPreference?: GPUPowerPreference;
  /** Features without which we cannot run: missing ones throw a clear error. */
  requiredFeatures?: GPUFeatureName[];
  /** Disable optional features (e.g. to test fallback kernels). */
  disableFeatures?: GPUFeatureName[];
  /**
   * Dawn's robustness transform (default true) clamps every storage and workgroup index in shaders.
   * false turns it off (Dawn toggle disable_robustness): out-of-bounds accesses are then undefined, but
   * tiled kernels run faster (matmul on the H200: 15-30% for f32, ~35% for the tensor-core path,
   * up to 5x for some subgroup-matrix tiles). Use only with kernels whose indexing is tested.
   */
  robustness?: boolean;
}

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  /** Features enabled on the device. */
  features: string[];
  /** Limits the device was created with. */
  limits: Record<string, number>;
  toggles: string[];
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /** WGSL language features of the Dawn instance (`navigator.gpu.wgslLanguageFeatures`). */
  wgslLanguageFeatures: string[];
}

export class GpuError extends Error {
  override name = 'GpuError';
}

let globalsInstalled = false;
/** One Dawn instance per toggle set (Dawn applies instance toggles to the devices created from it). */
const gpuInstances = new Map<string, GPU>();

/** The Dawn toggles enabled for these options. */
export function dawnToggles(robustness = true): string[] {
  return robustness ? [...DAWN_TOGGLES] : [...DAWN_TOGGLES, 'disable_robustness'];
}

function gpu(robustness = true): GPU {
  if (!globalsInstalled) {
    // GPUBufferUsage, GPUShaderStage, ... are globals in the WebGPU API; Node needs them installed.
    Object.assign(globalThis, globals);
    globalsInstalled = true;
  }
  const enabled = dawnToggles(robustness).join(',');
  let instance = gpuInstances.get(enabled);
  if (!instance) {
    instance = create([
      `enable-dawn-features=${enabled}`,
      `disable-dawn-features=${DAWN_DISABLED_TOGGLES.join(',')}`,
    ]);
    gpuInstances.set(enabled, instance);
  }
  return instance;
}

export async function requestAdapter(
  powerPreference: GPUPowerPreference = 'high-performance',
  robustness = true,
): Promise<GPUAdapter> {
  const g = gpu(robustness);
  const adapter = (await g.requestAdapter({ powerPreference })) ?? (await g.requestAdapter());
  if (!adapter) {
    throw new GpuError(
      'no WebGPU adapter found: Dawn needs a Vulkan driver (a GPU driver, or Mesa >= 24 lavapipe on CPU-only ' +
        'machines; tools/setup installs it on Debian 12)',
    );
  }
  // Dawn's null backend accepts every call and computes nothing: never run on it.
  const info = adapter.info as GPUAdapterInfo & { backendType?: string };
  if (/null/i.test(info.backendType ?? '') || /null/i.test(info.description ?? '')) {
    throw new GpuError(
      `refusing Dawn's null backend adapter (${info.description}): its dispatches do nothing`,
    );
  }
  return adapter;
}

/** A device with uncaptured errors and loss turned into thrown errors at the next check. */
export class GpuContext {
  private pendingErrors: string[] = [];
  private lostReason: string | undefined;

  private constructor(
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly report: AdapterReport,
  ) {
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.pendingErrors.push(`${e.constructor.name}: ${e.message}`);
    });
    void device.lost.then((info) => {
      if (info.reason !== 'destroyed') this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  static async create(options: GpuOptions = {}): Promise<GpuContext> {
    const adapter = await requestAdapter(options.powerPreference, options.robustness ?? true);
    const disabled = new Set(options.disableFeatures ?? []);
    const missing = (options.requiredFeatures ?? []).filter((f) => !adapter.features.has(f));
    if (missing.length) {
      throw new GpuError(
        `adapter '${adapter.info.description || adapter.info.device}' lacks required feature(s): ${missing.join(', ')}`,
      );
    }
    const features = [...new Set([...(options.requiredFeatures ?? []), ...OPTIONAL_FEATURES])].filter(
      (f) => adapter.features.has(f) && !disabled.has(f),
    );
    const requiredLimits: Record<string, number> = {};
    for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
    const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
    const info = adapter.info as GPUAdapterInfo & {
      backendType?: string;
      subgroupMinSize?: number;
      subgroupMaxSize?: number;
    };
    const limits: Record<string, number> = {};
    for (const key in device.limits) {
      const v = (device.limits as unknown as Record<string, unknown>)[key];
      if (typeof v === 'number') limits[key] = v;
    }
    const report: AdapterReport = {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      backend: info.backendType ?? 'unknown',
      features: [...device.features].sort(),
      limits,
      toggles: dawnToggles(options.robustness ?? true),
      wgslLanguageFeatures: [...gpu(options.robustness ?? true).wgslLanguageFeatures].sort(),
      ...(info.subgroupMinSize !== undefined && { subgroupMinSize: info.subgroupMinSize }),
      ...(info.subgroupMaxSize !== undefined && { subgroupMaxSize: info.subgroupMaxSize }),
    };
    return new GpuContext(adapter, device, report);
  }

  has(feature: GPUFeatureName): boolean {
    return this.device.features.has(feature);
  }

  /** Throw if the device was lost or an uncaptured error happened; `what` names the operation. */
  check(what: string): void {
    if (this.lostReason) throw new GpuError(`GPU device lost during ${what}: ${this.lostReason}`);
    if (this.pendingErrors.length) {
      const errs = this.pendingErrors.splice(0);
      throw new GpuError(`GPU error during ${what}: ${errs.join('; ')}`);
    }
  }

  /** Run `fn` inside validation + out-of-memory error scopes; a captured error throws, naming `what`. */
  async scoped<T>(what: string, fn: () => T): Promise<T> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: T | undefined;
    let thrown: unknown;
    try {
      result = fn();
    } catch (e) {
      thrown = e;
    }
    // Always pop both scopes, so a throwing fn cannot leave the device's scope stack unbalanced.
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (thrown !== undefined) throw thrown;
    const err = validation ?? oom;
    if (err) throw new GpuError(`${what}: ${err.message}`);
    return result as T;
  }

  /** Wait for all submitted work, then surface any error. */
  async sync(what = 'queued GPU work'): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    this.check(what);
  }

  destroy(): void {
    this.device.destroy();
  }
}
