// How one update unit's gradients travel to the CPU optimizer, and what the host does with them before
// the CPU step. On the GPU, right behind the unit's backward:
//   - the token embedding's gradient, when sent as rows, is already only the rows the batch touched (the
//     embedding backward wrote it so: the sink's compactRows);
//   - NaN and infinite values of everything that travels are counted into the unit's header (u32 [0]), so
//     the CPU steps can run unchecked and a non-finite unit is still never stepped;
//   - with f16 gradients, every f32 gradient is packed to fp16 with a per-tensor power-of-two scale
//     computed from its max |x| (packScaledHalf), whose f32 bits go to the header (u32 [1 + slot]);
//   - everything, header last, is downloaded through the ring into the CPU optimizer's gradient buffers
//     (gathered rows into a host staging buffer first).
// On the host, once the header has arrived: the count, each tensor's factor 1 / scale for the CPU step,
// and the touched rows scattered into their CPU gradient (the rows of the previous step zeroed: the
// others are zero, so the CPU step is the one a whole gradient would give).
import { Buffer } from 'node:buffer';
import {
  copyHostBytes,
  packScaledHalf,
  reduce,
  Tensor,
  type DownloadRing,
  type GpuRuntime,
  type Transfer,
} from '@lsp-offload/gpu-dawn';
import type { AdamW as CpuAdamW } from '@lsp-offload/cpu-wasm';

/** What the bytes to the host are, for the per-kind counts (bench, metrics). */
export type GradientKind = 'S' | 'gradients' | 'embedding rows' | 'headers';

/** Rows [rowStart, rowEnd) of a gradient, stepped by one CPU optimizer tensor. */
export interface WireTarget {
  name: string;
  rowStart: number;
  rowEnd: number;
}

export interface OutgoingGradient {
  label: string;
  kind: 'S' | 'gradients';
  /** As the backward produced it: f32, or f16 (zero mode's linears, sent as they are). */
  grad: Tensor;
  targets: WireTarget[];
  /**
   * The rows of the parameter that `grad` holds, in order (sorted, distinct; the parameter's gradient is
   * zero elsewhere): `grad` is [at least rows.length, ...] and only its first rows.length rows travel.
   */
  rows?: Int32Array;
}

/** What arrives for one CPU optimizer tensor. */
export interface Arrival {
  name: string;
  transfers: Transfer[];
  /** Host work once the transfers are done, before the step (scattering touched rows). */
  land?: () => void;
}

export interface SentUnit {
  /** One per target, in the order of the gradients and their targets. */
  arrivals: Arrival[];
  /** The unit's header: the non-finite count and the scales. Every step of the unit waits for it. */
  header: Transfer;
  /** NaN and infinite values in what the unit sent (once `header` is done). */
  nonFiniteCount(): number;
  /** Per-tensor factors for the CPU step of `names` (1 / scale of fp16 gradients; once `header` is done). */
  gradScales(names: readonly string[]): Record<string, number>;
  bytes: Record<GradientKind, number>;
}

interface Wire {
  source: OutgoingGradient;
  /** What is downloaded: the gradient, its gathered rows, or either packed to fp16. */
  tensor: Tensor;
  /** The allocation `tensor` views (itself, or a gradient with room for more rows than travel). */
  owner: Tensor;
  /** Header slot of its scale, or -1 when it travels unscaled. */
  scaleSlot: number;
}

/** First index of sorted `ids` whose value is >= v. */
function lowerBound(ids: Int32Array, v: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class GradientWire {
  /** Host staging of gathered rows per gradient (grown as needed, reused: first touches are slow). */
  private readonly rowStaging = new Map<string, Float32Array | Uint16Array>();
  /** Per CPU tensor, the local rows the last scatter wrote (zeroed before the next one). */
  private readonly landedRows = new Map<string, Int32Array>();

  constructor(
    private readonly gpu: GpuRuntime,
    private readonly cpu: CpuAdamW,
    private readonly down: DownloadRing,
    /** Pack f32 gradients to fp16 with a per-tensor scale (lsp's gradientDtype 'f16'). */
    private readonly halfGradients: boolean,
  ) {}

  /** Record the unit's GPU side and start its downloads (the gradients are consumed: do not reuse them). */
  send(unitLabel: string, gradients: readonly OutgoingGradient[]): SentUnit {
    const gpu = this.gpu;
    const wires: Wire[] = gradients.map((g) => {
      const sent = g.rows
        ? { tensor: subTensor(g.grad, [g.rows.length, ...g.grad.shape.slice(1)]), owner: g.grad }
        : { tensor: g.grad, owner: g.grad };
      return { source: g, ...sent, scaleSlot: -1 };
    });
    const packed = wires.filter((w) => this.halfGradients && w.tensor.dtype === 'f32');
    const header = gpu.tensor(`header.${unitLabel}`, 'u32', [1 + packed.length], 'gradients');
    reduce(
      gpu,
      'nonFiniteCount',
      wires.map((w) => w.tensor),
      { out: header, outIndex: 0 },
    );
    packed.forEach((w, slot) => {
      const half = gpu.tensor(`${w.owner.label}.f16`, 'f16', w.owner.shape, 'gradients');
      const view = w.owner === w.tensor ? half : subTensor(half, w.tensor.shape);
      packScaledHalf(gpu, w.tensor, view, { scaleOut: header, scaleIndex: 1 + slot });
      // the GPU orders any reuse of the f32 buffer after the commands recorded on it
      w.owner.release();
      Object.assign(w, { tensor: view, owner: half, scaleSlot: 1 + slot });
    });
    const bytes: Record<GradientKind, number> = { S: 0, gradients: 0, 'embedding rows': 0, headers: 0 };
    const arrivals: Arrival[] = [];
    const counted = new Set<Transfer>();
    for (const w of wires) {
      const kind: GradientKind = w.source.rows ? 'embedding rows' : w.source.kind;
      for (const a of w.source.rows ? this.downloadRows(w) : this.downloadWhole(w)) {
        // (the row blocks of gathered rows share one transfer)
        for (const t of a.transfers) if (!counted.has(t)) bytes[kind] += t.bytes;
        for (const t of a.transfers) counted.add(t);
        arrivals.push(a);
      }
    }
    const headerHost = new Uint32Array(1 + packed.length);
    const headerTransfer = this.down.download(header, headerHost, { label: `header ${unitLabel}` });
    bytes.headers += headerTransfer.bytes;
    const transfers = [...counted, headerTransfer];
    // the sent tensors may be reused once their copies are recorded (a failed transfer surfaces through
    // the caller's awaits; here it must not become an unhandled rejection)
    void Promise.all(transfers.map((t) => t.enqueued)).then(
      () => {
        for (const w of wires) w.owner.release();
        header.release();
      },
      () => undefined,
    );
    const scales = new Float32Array(headerHost.buffer);
    const slotOf = new Map<string, number>();
    for (const w of wires) for (const t of w.source.targets) slotOf.set(t.name, w.scaleSlot);
    return {
      arrivals,
      header: headerTransfer,
      nonFiniteCount: () => headerHost[0]!,
      gradScales: (names) => {
        const out: Record<string, number> = {};
        for (const n of names) {
          const slot = slotOf.get(n) ?? -1;
          if (slot >= 0) out[n] = 1 / scales[slot]!;
        }
        return out;
      },
      bytes,
    };
  }

  private cpuGrad(name: string, dtype: string): Float32Array | Uint16Array {
    const want = this.cpu.info(name).gradDtype;
    if (want !== dtype)
      throw new Error(`'${name}' travels as ${dtype} but the CPU optimizer takes ${want} gradients`);
    return dtype === 'f16' ? this.cpu.gradF16(name) : this.cpu.grad(name);
  }

  private downloadWhole(w: Wire): Arrival[] {
    const g = w.source;
    const rowBytes = w.tensor.byteLength / g.grad.shape[0]!;
    return g.targets.map((t) => ({
      name: t.name,
      transfers: [
        this.down.download(w.tensor, this.cpuGrad(t.name, w.tensor.dtype), {
          label: `${g.kind === 'S' ? 'S' : 'grad'} ${t.name}`,
          srcOffsetBytes: t.rowStart * rowBytes,
        }),
      ],
    }));
  }

  /** One download of every gathered row; each target then scatters its own rows into its gradient. */
  private downloadRows(w: Wire): Arrival[] {
    const g = w.source;
    const ids = g.rows!;
    const cols = g.grad.numel / g.grad.shape[0]!;
    const staging = this.staging(g.label, w.tensor.dtype, ids.length * cols);
    const transfer = this.down.download(w.tensor, staging, { label: `rows ${g.label}` });
    return g.targets.map((t) => {
      const from = lowerBound(ids, t.rowStart);
      const to = lowerBound(ids, t.rowEnd);
      return {
        name: t.name,
        transfers: [transfer],
        land: () => {
          const grad = this.cpuGrad(t.name, w.tensor.dtype);
          const rowBytes = cols * grad.BYTES_PER_ELEMENT;
          // one native memset / memcpy per row (typed-array methods on shared memory go word by word)
          for (const r of this.landedRows.get(t.name) ?? [])
            Buffer.from(grad.buffer, grad.byteOffset + r * rowBytes, rowBytes).fill(0);
          const local = new Int32Array(to - from);
          for (let j = from; j < to; j++) {
            const r = ids[j]! - t.rowStart;
            local[j - from] = r;
            copyHostBytes(
              'fill',
              grad.buffer,
              grad.byteOffset + r * rowBytes,
              staging.buffer,
              staging.byteOffset + j * rowBytes,
              rowBytes,
            );
          }
          this.landedRows.set(t.name, local);
        },
      };
    });
  }

  private staging(label: string, dtype: string, length: number): Float32Array | Uint16Array {
    let buf = this.rowStaging.get(label);
    const want = dtype === 'f16' ? Uint16Array : Float32Array;
    if (!buf || buf.length < length || !(buf instanceof want)) {
      buf = new want(Math.max(length, buf?.length ?? 0));
      this.rowStaging.set(label, buf);
    }
    return buf.subarray(0, length);
  }
}

/** The distinct token ids of a step's micro-batches, sorted (the embedding rows the step touches). */
export function touchedRows(inputIds: readonly ArrayLike<number>[], vocabSize: number): Int32Array {
  const seen = new Uint8Array(vocabSize);
  let count = 0;
  for (const ids of inputIds)
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < vocabSize))
        throw new RangeError(`token id ${id} at position ${i} is outside the vocabulary (${vocabSize})`);
      if (!seen[id]) {
        seen[id] = 1;
        count++;
      }
    }
  const out = new Int32Array(count);
  for (let id = 0, k = 0; k < count; id++) if (seen[id]) out[k++] = id;
  return out;
}

/**
 * Each token's row among the step's touched rows `rows` (sorted, from touchedRows): where the embedding
 * backward adds its gradient when the gradient holds only those rows.
 */
export function compactRowIds(ids: ArrayLike<number>, rows: Int32Array, vocabSize: number): Int32Array {
  const rowOf = new Int32Array(vocabSize).fill(-1);
  rows.forEach((id, j) => (rowOf[id] = j));
  return Int32Array.from({ length: ids.length }, (_, i) => {
    const r = rowOf[ids[i]!];
    if (r === undefined || r < 0)
      throw new RangeError(`token id ${ids[i]} at ${i} is not among the step's rows`);
    return r;
  });
}

/** The first elements of `t`'s storage as a tensor of `shape` (a view: release `t`, never the view). */
function subTensor(t: Tensor, shape: readonly number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n > t.numel) throw new Error(`a [${shape.join(', ')}] view does not fit in '${t}'`);
  return new Tensor(t.buffer, t.dtype, shape, t.label, t.byteOffset);
}
