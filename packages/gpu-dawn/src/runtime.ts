// The GPU runtime every kernel goes through: device, budgeted memory, a pipeline cache, kernel params,
// and one command encoder into which dispatches and copies are recorded until submit().
import { GpuContext, GpuError, type GpuOptions } from './device.js';
import { toF16Array, fromF16Array, type DType } from './dtype.js';
import { GpuMemory, fmt as formatBytes, type MemoryCategory } from './memory.js';
import { Tensor, numelOf, storageBytes, type Shape } from './tensor.js';
import { Params, UniformRing } from './uniforms.js';

export interface GpuRuntimeOptions extends GpuOptions {
  /** GPU memory budget in bytes (default: none beyond the device's own). */
  budgetBytes?: number;
  /**
   * The most bytes one storage binding may hold, below the adapter's maxStorageBufferBindingSize (to
   * simulate a smaller adapter, as budgetBytes simulates a smaller card): tensors above it are used in
   * row blocks (see binding-blocks.ts), and a dispatch binding more is refused.
   */
  maxBindingBytes?: number;
}

export type BindingLike = Tensor | GPUBuffer | GPUBufferBinding;

export interface DispatchArgs {
  label: string;
  pipeline: GPUComputePipeline;
  /** Storage bindings in binding order (0, 1, ...); params, if any, bind right after them. */
  bindings: BindingLike[];
  params?: Params;
  workgroups: readonly [number, number?, number?];
}

/** Consulted whenever a compute pass opens; returns timestamp writes for it, or undefined (the GPU timer). */
export type PassTimestampSource = () => GPUComputePassTimestampWrites | undefined;

/** Callbacks around every submit(): `beforeSubmit` may record into commandEncoder(); `afterSubmit` runs once queued. */
export interface SubmitHooks {
  beforeSubmit?: () => void;
  afterSubmit?: () => void;
}

export const STORAGE_USAGE = (): number =>
  GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class GpuRuntime {
  readonly memory: GpuMemory;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly uniforms: UniformRing;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private nextPassTimestamps: GPUComputePassTimestampWrites | undefined;
  private passTimestampSource: PassTimestampSource | undefined;
  private readonly submitHooks = new Set<SubmitHooks>();
  private readonly releaseAtSubmit: Tensor[] = [];
  /** Dispatches recorded since the last submit (for batching heuristics and tests). */
  pendingDispatches = 0;

  /** The most bytes one storage binding may hold (the adapter's limit, or a lower one asked for). */
  readonly maxBindingBytes: number;

  private constructor(
    readonly ctx: GpuContext,
    budgetBytes: number,
    maxBindingBytes: number,
  ) {
    this.memory = new GpuMemory(
      ctx.device,
      budgetBytes,
      () => this.encoder !== null || this.pass !== null,
      () => this.submitForRoom(),
    );
    this.uniforms = new UniformRing(ctx.device);
    const adapterBinding = ctx.device.limits.maxStorageBufferBindingSize;
    if (!(maxBindingBytes > 0))
      throw new RangeError(`maxBindingBytes must be positive, got ${maxBindingBytes}`);
    this.maxBindingBytes = Math.min(adapterBinding, maxBindingBytes);
  }

  static async create(options: GpuRuntimeOptions = {}): Promise<GpuRuntime> {
    const ctx = await GpuContext.create(options);
    return new GpuRuntime(
      ctx,
      options.budgetBytes ?? Number.POSITIVE_INFINITY,
      options.maxBindingBytes ?? Number.POSITIVE_INFINITY,
    );
  }

  get device(): GPUDevice {
    return this.ctx.device;
  }

  /** The device's limits (what it was created with). */
  get limits(): GPUSupportedLimits {
    return this.ctx.device.limits;
  }

  has(feature: GPUFeatureName): boolean {
    return this.ctx.has(feature);
  }

  /** A compute pipeline, compiled once per key. `code` is only called on a cache miss. */
  pipeline(key: string, code: () => string, entryPoint = 'main'): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ label: key, code: code() });
      p = this.device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint } });
      this.pipelines.set(key, p);
    }
    return p;
  }

  // ---- tensors ----------------------------------------------------------------------------------

  tensor(label: string, dtype: DType, shape: Shape, category: MemoryCategory): Tensor {
    const bytes = storageBytes(dtype, numelOf(shape));
    const buffer = this.memory.allocate(label, bytes, category, STORAGE_USAGE());
    return new Tensor(buffer, dtype, shape, label, 0, () => this.memory.release(buffer));
  }

  /**
   * A workspace tensor for commands being recorded now, released by the next submit(). Releasing it any
   * earlier would let a reuse of the buffer be written by queue.writeBuffer (which runs at once on the
   * queue timeline) before the recorded commands that still use it are even submitted.
   */
  scratch(label: string, dtype: DType, shape: Shape): Tensor {
    const t = this.tensor(label, dtype, shape, 'workspace');
    this.releaseAtSubmit.push(t);
    return t;
  }

  /** Upload host values; f16 tensors take numbers (converted, round to nearest even) or raw Uint16Array bits. */
  upload(
    label: string,
    dtype: DType,
    shape: Shape,
    data: ArrayLike<number> | Uint16Array,
    category: MemoryCategory = 'workspace',
  ): Tensor {
    const n = numelOf(shape);
    if (data.length !== n)
      throw new Error(`upload '${label}': ${data.length} values for shape [${shape.join(', ')}] (${n})`);
    const t = this.tensor(label, dtype, shape, category);
    this.write(t, data);
    return t;
  }

  /** Overwrite a tensor's contents from host values (non-shared memory; see transfers for shared). */
  write(t: Tensor, data: ArrayLike<number> | Uint16Array): void {
    if (data.length !== t.numel)
      throw new Error(`write '${t.label}': ${data.length} values for ${t.numel} elements`);
    const bytes = hostBytes(t.dtype, data);
    this.submitRecorded();
    if (bytes.buffer instanceof SharedArrayBuffer) {
      throw new Error(`write '${t.label}': SharedArrayBuffer views must go through a staging ring`);
    }
    const padded = bytes.byteLength % 4 ? copyPadded(bytes) : bytes;
    this.device.queue.writeBuffer(
      t.buffer,
      t.byteOffset,
      padded.buffer,
      padded.byteOffset,
      padded.byteLength,
    );
  }

  /** Fill a tensor's storage with a 32-bit pattern (e.g. NaN to poison outputs in tests). */
  fill32(t: Tensor, bits: number): void {
    this.submitRecorded();
    const words = new Uint32Array(t.bindingSize / 4).fill(bits);
    this.device.queue.writeBuffer(t.buffer, t.byteOffset, words.buffer, 0, words.byteLength);
  }

  /** Submit pending work and read a tensor back as numbers (f16 converted to f32). */
  async read(t: Tensor): Promise<Float32Array | Int32Array | Uint32Array> {
    const raw = await this.readBytes(t.buffer, t.byteOffset, t.bindingSize, t.label);
    switch (t.dtype) {
      case 'f32':
        return new Float32Array(raw, 0, t.numel);
      case 'f16':
        return fromF16Array(new Uint16Array(raw, 0, t.numel));
      case 'i32':
        return new Int32Array(raw, 0, t.numel);
      case 'u32':
        return new Uint32Array(raw, 0, t.numel);
    }
  }

  async readBytes(src: GPUBuffer, offset: number, bytes: number, what: string): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({
      label: `${what}.readback`,
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.commandEncoder().copyBufferToBuffer(src, offset, staging, 0, bytes);
    this.submit();
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    this.ctx.check(`reading back ${what}`);
    return out;
  }

  // ---- recording ---------------------------------------------------------------------------------

  /** The open command encoder (ends any open compute pass so copies can be recorded). */
  commandEncoder(): GPUCommandEncoder {
    this.endPass();
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Timestamp writes for the next compute pass that opens (used by the GPU timer). */
  setNextPassTimestamps(writes: GPUComputePassTimestampWrites | undefined): void {
    this.endPass();
    this.nextPassTimestamps = writes;
  }

  /**
   * Timestamp writes for every compute pass that opens from now on (a pending setNextPassTimestamps()
   * takes precedence). One source per runtime: the GPU timer installs it; undefined removes it.
   */
  setPassTimestampSource(source: PassTimestampSource | undefined): void {
    this.endPass();
    this.passTimestampSource = source;
  }

  /** Run hooks around every submit (timers resolve their queries there). Returns a remover. */
  addSubmitHooks(hooks: SubmitHooks): () => void {
    this.submitHooks.add(hooks);
    return () => this.submitHooks.delete(hooks);
  }

  /**
   * Record a dispatch into the open compute pass (opened on demand). The adapter limits a dispatch can
   * break (binding sizes, workgroups per dimension) are checked first: a clear error, and nothing invalid
   * recorded (Dawn would report each later use of the invalid bind group on its own).
   */
  dispatch(args: DispatchArgs): void {
    const [x, y = 1, z = 1] = args.workgroups;
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max)
      throw new GpuError(
        `${args.label}: dispatch [${x}, ${y}, ${z}] exceeds ${max} workgroups per dimension`,
      );
    const resources = args.bindings.map(toBinding);
    resources.forEach((r, i) => this.checkBinding(args.label, args.bindings[i]!, r));
    const entries: GPUBindGroupEntry[] = resources.map((resource, i) => ({ binding: i, resource }));
    if (args.params) entries.push({ binding: entries.length, resource: this.uniforms.push(args.params) });
    const bindGroup = this.device.createBindGroup({
      label: args.label,
      layout: args.pipeline.getBindGroupLayout(0),
      entries,
    });
    const pass = this.computePass();
    pass.setPipeline(args.pipeline);
    pass.setBindGroup(0, bindGroup);
    if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    this.pendingDispatches++;
  }

  private checkBinding(label: string, b: BindingLike, r: GPUBufferBinding): void {
    const bytes = r.size ?? r.buffer.size - (r.offset ?? 0);
    if (bytes <= this.maxBindingBytes) return;
    const what = b instanceof Tensor ? `'${b}'` : `buffer '${r.buffer.label}'`;
    const lowered = this.maxBindingBytes < this.device.limits.maxStorageBufferBindingSize;
    throw new GpuError(
      `${label}: binds ${what} of ${formatBytes(bytes)}, over the adapter's maxStorageBufferBindingSize ` +
        `(${lowered ? 'lowered to ' : ''}${formatBytes(this.maxBindingBytes)})`,
    );
  }

  endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /**
   * queue.writeBuffer runs at once on the queue timeline, ahead of commands recorded but not yet
   * submitted: submit those first, so host writes land in program order (a reused buffer cannot be
   * overwritten under commands recorded earlier that still read it).
   */
  private submitRecorded(): void {
    if (this.encoder || this.pass) this.submit();
  }

  /** Submit everything recorded so far. */
  submit(): void {
    this.submitEncoder(() => {
      for (const t of this.releaseAtSubmit.splice(0)) t.release();
      this.uniforms.reset();
      this.pendingDispatches = 0;
    });
  }

  /** End the pass, run the hooks around a queue submit of the encoder; `then` runs before afterSubmit. */
  private submitEncoder(then: () => void): void {
    this.endPass();
    for (const h of this.submitHooks) h.beforeSubmit?.();
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
    }
    this.memory.markSubmitted();
    then();
    for (const h of this.submitHooks) h.afterSubmit?.();
  }

  private flushingForRoom = false;

  /**
   * Submit what is recorded so the memory pool may destroy buffers freed before now (under a budget, when
   * only they stand in the way). Unlike submit(), scratch tensors stay alive until the next submit():
   * the code recording now may still use them, and a new allocation must not get their buffers.
   */
  private submitForRoom(): void {
    if (this.flushingForRoom) return; // a submit hook that allocates
    this.flushingForRoom = true;
    try {
      this.submitEncoder(() => undefined);
    } finally {
      this.flushingForRoom = false;
    }
  }

  /** Submit and wait for the GPU to finish; surfaces GPU errors naming `what`. */
  async sync(what = 'GPU work'): Promise<void> {
    this.submit();
    await this.ctx.sync(what);
  }

  destroy(): void {
    this.endPass();
    this.encoder = null;
    this.releaseAtSubmit.length = 0;
    this.uniforms.destroy();
    this.memory.destroyAll();
    this.ctx.destroy();
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      const writes = this.nextPassTimestamps ?? this.passTimestampSource?.();
      const desc: GPUComputePassDescriptor = writes ? { timestampWrites: writes } : {};
      this.nextPassTimestamps = undefined;
      this.pass = this.encoder.beginComputePass(desc);
    }
    return this.pass;
  }
}

function toBinding(b: BindingLike): GPUBufferBinding {
  if (b instanceof Tensor) return b.binding();
  if ('mapState' in b) return { buffer: b };
  return b;
}

function hostBytes(dtype: DType, data: ArrayLike<number> | Uint16Array): Uint8Array {
  switch (dtype) {
    case 'f32':
      return asBytes(data instanceof Float32Array ? data : Float32Array.from(data));
    case 'f16':
      return asBytes(data instanceof Uint16Array ? data : toF16Array(data));
    case 'i32':
      return asBytes(data instanceof Int32Array ? data : Int32Array.from(data));
    case 'u32':
      return asBytes(data instanceof Uint32Array ? data : Uint32Array.from(data));
  }
}

function asBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function copyPadded(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}
