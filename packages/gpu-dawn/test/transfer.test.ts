// Staging rings: round trips through ArrayBuffer, SharedArrayBuffer and shared WebAssembly.Memory views,
// chunking, back-pressure, ordering against dispatches, partial ranges and clear errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DownloadRing,
  UploadRing,
  TransferError,
  HOST_COPY_METHODS,
  copyHostBytes,
  axpby,
  fromF16Array,
  toF16Array,
  GpuRuntime,
} from '../src/index.js';
import { axpbyReference } from '../src/reference.js';
import { expectClose, makeRng, NAN_BITS, randomArray, useGpu } from './harness.js';

const gpu = useGpu();
const CHUNK = 64 << 10; // small chunks so modest transfers split into several
const SLOTS = 3;
let down: DownloadRing;
let up: UploadRing;

beforeAll(async () => {
  down = await DownloadRing.create(gpu(), { chunkBytes: CHUNK, slots: SLOTS, label: 'test-down' });
  up = await UploadRing.create(gpu(), { chunkBytes: CHUNK, slots: SLOTS, label: 'test-up' });
});
afterAll(async () => {
  await down?.close();
  await up?.close();
});

type HostKind = 'ArrayBuffer' | 'SharedArrayBuffer' | 'WebAssembly.Memory';
const HOST_KINDS: HostKind[] = ['ArrayBuffer', 'SharedArrayBuffer', 'WebAssembly.Memory'];

/** `bytes` bytes of host memory of the given kind, at an odd byte offset inside it (unaligned views). */
function hostBytes(kind: HostKind, bytes: number, offset = 3): Uint8Array {
  const total = bytes + offset;
  const buffer: ArrayBufferLike =
    kind === 'ArrayBuffer'
      ? new ArrayBuffer(total)
      : kind === 'SharedArrayBuffer'
        ? new SharedArrayBuffer(total)
        : new WebAssembly.Memory({ initial: Math.ceil(total / 65536), maximum: 1024, shared: true }).buffer;
  return new Uint8Array(buffer, offset, bytes);
}

function randomBytes(seed: number, out: Uint8Array): Uint8Array {
  const rng = makeRng(seed);
  for (let i = 0; i < out.length; i++) out[i] = (rng() * 256) | 0;
  return out;
}

function poison(view: Uint8Array): void {
  // NaN bits in every 4-byte word (at the view's own alignment): unwritten bytes show.
  for (let i = 0; i < view.length; i++) view[i] = [0x00, 0x00, 0xc0, 0x7f][i % 4]!;
}

function expectBytesEqual(got: Uint8Array, want: Uint8Array, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i])
      expect.fail(`${what}: first difference at byte ${i}: got ${got[i]}, want ${want[i]}`);
  }
}

function deviceBuffer(g: GpuRuntime, bytes: number): ReturnType<GpuRuntime['tensor']> {
  const t = g.tensor('xfer', 'u32', [Math.ceil(bytes / 4)], 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}

describe('staging rings: round trips', () => {
  for (const kind of HOST_KINDS) {
    for (const bytes of [4, 12, 4092, CHUNK + 4, 3 * CHUNK + 1236, 7 * CHUNK + 20]) {
      it(`${kind}, ${bytes} bytes (${Math.ceil(bytes / CHUNK)} chunk(s))`, async () => {
        const g = gpu();
        const t = deviceBuffer(g, bytes);
        const src = randomBytes(bytes, hostBytes(kind, bytes));
        const dst = hostBytes(kind, bytes, 5);
        poison(dst);
        const u = up.upload(src, t, { label: 'round-trip up' });
        await u.enqueued;
        await down.download(t, dst, { label: 'round-trip down' });
        expectBytesEqual(dst, src, `${kind} ${bytes} B`);
        await u; // the device copy has executed
        expect(u.isDone).toBe(true);
        t.release();
      });
    }
  }

  it('matches the runtime read path for f32 tensors (ArrayBuffer side)', async () => {
    const g = gpu();
    const n = 12345;
    const x = randomArray(makeRng(1), n);
    const t = g.tensor('x', 'f32', [n], 'workspace');
    g.fill32(t, NAN_BITS);
    await up.upload(x, t).enqueued;
    expectClose(await g.read(t), x, { rtol: 0, atol: 0 }, 'read after upload');
    const back = new Float32Array(n).fill(NaN);
    await down.download(t, back);
    expectClose(back, x, { rtol: 0, atol: 0 }, 'download');
    t.release();
  });

  it('moves an odd-length f16 tensor (its byte count is not a multiple of 4)', async () => {
    const g = gpu();
    const n = 7;
    const values = [0.5, -1.25, 3, 65504, -0.0001, 2.5, 1];
    const t = g.tensor('h', 'f16', [n], 'workspace');
    g.fill32(t, NAN_BITS);
    const bits = new Uint16Array(new SharedArrayBuffer(n * 2));
    bits.set(toF16Array(values));
    await up.upload(bits, t).enqueued;
    expectClose(await g.read(t), fromF16Array(bits), { rtol: 0, atol: 0 }, 'f16 upload');
    const back = new Uint16Array(new SharedArrayBuffer(n * 2)).fill(0xffff);
    await down.download(t, back);
    expect(Array.from(back)).toEqual(Array.from(bits));
    t.release();
  });

  it('writes only the addressed range (offsets into tensors, untouched bytes keep their poison)', async () => {
    const g = gpu();
    const words = 5000;
    const t = deviceBuffer(g, words * 4);
    const rng = makeRng(7);
    const part = new Uint32Array(new SharedArrayBuffer(1001 * 4));
    for (let i = 0; i < part.length; i++) part[i] = (rng() * 2 ** 32) >>> 0;
    await up.upload(part, t, { dstOffsetBytes: 1236 * 4 }).enqueued;
    const all = new Uint32Array(words);
    await down.download(t, all);
    for (let i = 0; i < words; i++) {
      const want = i >= 1236 && i < 1236 + 1001 ? part[i - 1236]! : NAN_BITS;
      if (all[i] !== want) expect.fail(`word ${i}: got ${all[i]}, want ${want}`);
    }
    const window = new Uint32Array(333);
    await down.download(t, window, { srcOffsetBytes: 1300 * 4 });
    expect(Array.from(window)).toEqual(Array.from(part.subarray(1300 - 1236, 1300 - 1236 + 333)));
    t.release();
  });

  it('moves zero bytes as an already finished transfer', async () => {
    const g = gpu();
    const t = deviceBuffer(g, 16);
    const tr = up.upload(new Uint8Array(0), t);
    expect(tr.isEnqueued && tr.isDone).toBe(true);
    await down.download(t, new Float32Array(0));
    t.release();
  });
});

describe('host copy methods', () => {
  for (const method of HOST_COPY_METHODS) {
    it(`'${method}' copies exactly the range, aligned or not, into shared and plain memory`, () => {
      for (const [dstOffset, srcOffset, bytes] of [
        [0, 0, 4096],
        [8, 16, 1003],
        [3, 0, 777],
        [5, 9, 1],
      ] as const) {
        const src = randomBytes(bytes, new Uint8Array(srcOffset + bytes + 16));
        for (const dst of [new Uint8Array(new SharedArrayBuffer(6000)), new Uint8Array(6000)]) {
          copyHostBytes(method, dst.buffer, dstOffset, src.buffer, srcOffset, bytes);
          expectBytesEqual(
            dst.subarray(dstOffset, dstOffset + bytes),
            src.subarray(srcOffset, srcOffset + bytes),
            method,
          );
          expect(dst.subarray(0, dstOffset).every((b) => b === 0)).toBe(true);
          expect(dst.subarray(dstOffset + bytes).every((b) => b === 0)).toBe(true);
        }
      }
    });

    it(`'${method}' rings round-trip a multi-chunk transfer at an unaligned host offset`, async () => {
      const g = gpu();
      const bytes = 2 * CHUNK + 1004;
      const ringDown = await DownloadRing.create(g, { chunkBytes: CHUNK, slots: 2, hostCopy: method });
      const ringUp = await UploadRing.create(g, { chunkBytes: CHUNK, slots: 2, hostCopy: method });
      const t = deviceBuffer(g, bytes);
      const src = randomBytes(3, hostBytes('WebAssembly.Memory', bytes, 1));
      const dst = hostBytes('SharedArrayBuffer', bytes, 6);
      poison(dst);
      await ringUp.upload(src, t).enqueued;
      await ringDown.download(t, dst);
      expectBytesEqual(dst, src, method);
      await Promise.all([ringDown.close(), ringUp.close()]);
      t.release();
    });
  }
});

describe('staging rings: ordering with GPU work', () => {
  it('an upload enqueued before a dispatch is visible to it; a download sees the dispatches before it', async () => {
    const g = gpu();
    const n = 20001; // > CHUNK bytes / 4: several chunks each
    const rng = makeRng(11);
    const x = randomArray(rng, n);
    const y = randomArray(rng, n);
    const xs = new Float32Array(new SharedArrayBuffer(n * 4));
    const ys = new Float32Array(new SharedArrayBuffer(n * 4));
    xs.set(x);
    ys.set(y);
    const xt = g.tensor('x', 'f32', [n], 'workspace');
    const yt = g.tensor('y', 'f32', [n], 'workspace');
    g.fill32(xt, NAN_BITS);
    g.fill32(yt, NAN_BITS);
    const ux = up.upload(xs, xt);
    const uy = up.upload(ys, yt);
    await Promise.all([ux.enqueued, uy.enqueued]);
    axpby(g, xt, yt, 1.5, -0.5);
    const got = new Float32Array(new SharedArrayBuffer(n * 4)).fill(NaN);
    const d = down.download(yt, got);
    await d;
    expectClose(got, axpbyReference(1.5, x, -0.5, y), { rtol: 1e-6, atol: 1e-7 }, 'y after upload + axpby');
    xt.release();
    yt.release();
  });

  it('a download enqueued on return reads the source before work recorded after the call', async () => {
    const g = gpu();
    const n = 1000; // one chunk
    const x = new Float32Array(n).fill(1);
    const xt = g.upload('x', 'f32', [n], x);
    const yt = g.upload('y', 'f32', [n], new Float32Array(n).fill(2));
    await down.idle();
    const before = new Float32Array(n);
    const d = down.download(yt, before);
    expect(d.isEnqueued).toBe(true);
    axpby(g, xt, yt, 1, 1); // y = 3, recorded after the download's copy
    const after = new Float32Array(n);
    const d2 = down.download(yt, after);
    await Promise.all([d, d2]);
    expect(before.every((v) => v === 2)).toBe(true);
    expect(after.every((v) => v === 3)).toBe(true);
    xt.release();
    yt.release();
  });
});

describe('staging rings: back-pressure and accounting', () => {
  it('keeps at most `slots` chunks in flight while many multi-chunk transfers queue', async () => {
    const g = gpu();
    const count = 40;
    const bytes = 2 * CHUNK + 100;
    const tensors = Array.from({ length: count }, () => deviceBuffer(g, bytes));
    const sources = tensors.map((_, i) => randomBytes(100 + i, hostBytes('SharedArrayBuffer', bytes)));
    const ups = tensors.map((t, i) => up.upload(sources[i]!, t));
    expect(up.stats().queued).toBeGreaterThan(0); // only SLOTS chunks could start
    expect(up.stats().inFlight).toBeLessThanOrEqual(SLOTS);
    await Promise.all(ups.map((u) => u.enqueued));
    const outs = tensors.map(() => hostBytes('WebAssembly.Memory', bytes));
    await Promise.all(tensors.map((t, i) => down.download(t, outs[i]!)));
    outs.forEach((o, i) => expectBytesEqual(o, sources[i]!, `transfer ${i}`));
    await Promise.all(ups);
    expect(up.stats().maxInFlight).toBeLessThanOrEqual(SLOTS);
    expect(down.stats().maxInFlight).toBeLessThanOrEqual(SLOTS);
    expect(down.stats().maxInFlight).toBe(SLOTS);
    for (const t of tensors) t.release();
  });

  it('fails with the memory budget error and keeps nothing when its staging does not fit', async () => {
    const small = await GpuRuntime.create({ budgetBytes: 3 << 16 });
    try {
      await expect(UploadRing.create(small, { chunkBytes: 1 << 16, slots: 4, label: 'big' })).rejects.toThrow(
        /budget exhausted: 'big.slot3' \(staging\)/,
      );
      expect(small.memory.stats().byCategory.staging.usedBytes).toBe(0);
    } finally {
      small.destroy();
    }
  });

  it("accounts staging buffers under 'staging' and gives them back on close()", async () => {
    const g = gpu();
    const before = g.memory.stats().byCategory.staging.usedBytes;
    const ring = await DownloadRing.create(g, { chunkBytes: 1 << 16, slots: 2 });
    expect(g.memory.stats().byCategory.staging.usedBytes - before).toBe(2 << 16);
    await ring.close();
    expect(g.memory.stats().byCategory.staging.usedBytes).toBe(before);
    expect(() => ring.download(deviceBuffer(g, 4), new Uint8Array(4))).toThrow(/closed/);
  });
});

describe('staging rings: errors name the transfer and the tensor', () => {
  it('turns a GPU error in a transfer into a rejection naming it, then refuses further work', async () => {
    const g = gpu();
    const ring = await DownloadRing.create(g, { chunkBytes: 4096, slots: 1, label: 'fragile' });
    const gone = g.device.createBuffer({ label: 'gone', size: 64, usage: GPUBufferUsage.COPY_SRC });
    gone.destroy(); // a destroyed buffer in a submit is a GPU validation error
    const t = ring.download(gone, new Uint8Array(64), { label: 'from-destroyed' });
    await expect(t.done).rejects.toThrow(/download 'from-destroyed' \(buffer 'gone'\)/);
    await expect(t.enqueued).resolves.toBeUndefined();
    expect(() => ring.download(gone, new Uint8Array(4))).toThrow(/fragile failed earlier/);
    await ring.close();
  });

  it('rejects bad ranges, alignment, usage and host sides', () => {
    const g = gpu();
    const t = g.tensor('weights.q', 'f32', [10], 'workspace');
    expect(() => up.upload(new Float32Array(11), t, { label: 'q' })).toThrow(
      /upload 'q': 44 bytes at device offset 0 overrun tensor 'weights.q' \(40 bytes, f32\[10\]\)/,
    );
    expect(() => down.download(t, new Float32Array(2), { srcOffsetBytes: 2 })).toThrow(/multiple of 4/);
    expect(() => up.upload(new Uint8Array(6), t)).toThrow(/not a multiple of 4/);
    const mapRead = g.device.createBuffer({
      label: 'readback',
      size: 64,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    expect(() => down.download(mapRead, new Uint8Array(4))).toThrow(/buffer 'readback' lacks COPY_SRC/);
    expect(() => up.upload([1, 2] as unknown as Float32Array, t)).toThrow(TransferError);
    t.release();
    expect(() => down.download(t, new Float32Array(10))).toThrow(/tensor 'weights.q' was released/);
    mapRead.destroy();
  });
});
