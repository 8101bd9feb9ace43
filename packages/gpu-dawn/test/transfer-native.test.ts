// The native parallel host copy (native/host-copy.c) and the rings' 'threads' and 'async' methods: content
// of odd-sized copies split over several threads, both directions through the rings with chunks large
// enough to copy off the main thread, host sides in ArrayBuffer, SharedArrayBuffer and shared
// WebAssembly.Memory, and the call order kept where asynchronous copies could overtake each other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ASYNC_COPY_MIN_BYTES,
  DEFAULT_HOST_COPY,
  DownloadRing,
  GpuRuntime,
  UploadRing,
  copyHostBytes,
  nativeHostCopyStatus,
  type HostCopyMethod,
} from '../src/index.js';
import { makeRng, NAN_BITS, useGpu } from './harness.js';

const gpu = useGpu();
const CHUNK = 2 * ASYNC_COPY_MIN_BYTES; // full chunks copy off the main thread
const KINDS = ['ArrayBuffer', 'SharedArrayBuffer', 'WebAssembly.Memory'] as const;
type Kind = (typeof KINDS)[number];

function host(kind: Kind, bytes: number, offset: number): Uint8Array {
  const total = bytes + offset + 7;
  const buffer =
    kind === 'ArrayBuffer'
      ? new ArrayBuffer(total)
      : kind === 'SharedArrayBuffer'
        ? new SharedArrayBuffer(total)
        : new WebAssembly.Memory({ initial: Math.ceil(total / 65536), maximum: 4096, shared: true }).buffer;
  return new Uint8Array(buffer, offset, bytes);
}

function randomFill(seed: number, out: Uint8Array): Uint8Array {
  const rng = makeRng(seed);
  for (let i = 0; i < out.length; i++) out[i] = (rng() * 256) | 0;
  return out;
}

function expectSame(got: Uint8Array, want: Uint8Array, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  if (Buffer.from(got.buffer, got.byteOffset, got.length).equals(want)) return;
  let at = 0;
  while (got[at] === want[at]) at++;
  expect.fail(`${what}: first difference at byte ${at} of ${want.length}: got ${got[at]}, want ${want[at]}`);
}

function deviceWords(g: GpuRuntime, bytes: number): ReturnType<GpuRuntime['tensor']> {
  const t = g.tensor('native-xfer', 'u32', [Math.ceil(bytes / 4)], 'workspace');
  g.fill32(t, NAN_BITS);
  return t;
}

describe('native host copy', () => {
  it('is built on this platform and is the rings default', () => {
    const status = nativeHostCopyStatus();
    expect(status.available, status.reason).toBe(true);
    expect(DEFAULT_HOST_COPY).toBe('async');
  });

  for (const threads of [1, 2, 3, 7]) {
    it(`copies exactly the range on ${threads} thread(s), odd sizes and offsets, into shared and plain memory`, () => {
      // sizes around the per-thread part size (256 KiB), so copies split into uneven parts
      for (const [bytes, srcOffset, dstOffset] of [
        [1, 0, 3],
        [4093, 5, 0],
        [3 * (256 << 10) + 13, 1, 7],
        [(1 << 20) * 2 + 4099, 8, 8],
      ] as const) {
        const src = randomFill(bytes + threads, new Uint8Array(srcOffset + bytes + 5)).subarray(srcOffset);
        for (const kind of KINDS) {
          const dst = host(kind, bytes + 64, dstOffset);
          dst.fill(0xee);
          copyHostBytes('threads', dst.buffer, dst.byteOffset + 32, src.buffer, srcOffset, bytes, threads);
          expectSame(dst.subarray(32, 32 + bytes), src.subarray(0, bytes), `${kind} ${bytes} B`);
          expect(dst.subarray(0, 32).every((b) => b === 0xee)).toBe(true);
          expect(dst.subarray(32 + bytes).every((b) => b === 0xee)).toBe(true);
        }
      }
    });
  }

  it('refuses bad thread counts', async () => {
    expect(() => copyHostBytes('threads', new ArrayBuffer(8), 0, new ArrayBuffer(8), 0, 8, 0)).toThrow(
      /threads must be an integer in \[1, 64\]/,
    );
    await expect(DownloadRing.create(gpu(), { hostCopy: 'async', copyThreads: 65 })).rejects.toThrow(
      /copyThreads must be an integer in \[1, 64\]; got 65/,
    );
  });
});

describe.each(['threads', 'async'] as HostCopyMethod[])("rings with hostCopy '%s'", (hostCopy) => {
  let down: DownloadRing;
  let up: UploadRing;
  beforeAll(async () => {
    const options = { chunkBytes: CHUNK, slots: 3, hostCopy, copyThreads: 3 };
    down = await DownloadRing.create(gpu(), { ...options, label: `native-down-${hostCopy}` });
    up = await UploadRing.create(gpu(), { ...options, label: `native-up-${hostCopy}` });
  });
  afterAll(async () => {
    await down?.close();
    await up?.close();
  });

  for (const kind of KINDS) {
    for (const bytes of [12, ASYNC_COPY_MIN_BYTES - 4, CHUNK + 1236, 5 * CHUNK + 1]) {
      it(`${kind}, ${bytes} bytes round trip at odd host offsets`, async () => {
        // uploads move whole words (an odd count only where a tensor's data ends); downloads any count
        const g = gpu();
        const words = Math.ceil(bytes / 4) * 4;
        const t = deviceWords(g, words);
        const src = randomFill(words, host(kind, words, 3));
        const dst = host(kind, bytes, 5).fill(0xa5);
        const u = up.upload(src, t, { label: 'native up' });
        await u.enqueued;
        src.fill(0); // the host bytes were consumed: overwriting them must not reach the device
        await down.download(t, dst, { label: 'native down' });
        expectSame(dst, randomFill(words, new Uint8Array(words)).subarray(0, bytes), `${kind} ${bytes} B`);
        await u;
        t.release();
      });
    }
  }

  it('later downloads into overlapping host bytes land last', async () => {
    // An 8 MiB chunk, then a short one (still copied off the main thread) into its tail: both are in
    // flight together and the short copy would finish first; repeated, so an unordered ring fails.
    const g = gpu();
    const bytes = 8 << 20;
    const tail = ASYNC_COPY_MIN_BYTES + 4096;
    const ring = await DownloadRing.create(g, { chunkBytes: bytes, slots: 2, hostCopy, copyThreads: 2 });
    const a = deviceWords(g, bytes);
    const b = deviceWords(g, tail);
    const wantA = randomFill(1, new Uint8Array(bytes));
    const wantB = randomFill(2, new Uint8Array(tail));
    await Promise.all([up.upload(wantA, a).enqueued, up.upload(wantB, b).enqueued]);
    const dst = host('SharedArrayBuffer', bytes + 64, 0);
    const at = bytes - tail - 40; // b lands inside a's range, 40 bytes before its end
    for (let rep = 0; rep < 16; rep++) {
      dst.fill(0);
      const first = ring.download(a, dst.subarray(0, bytes));
      const second = ring.download(b, dst.subarray(at, at + tail));
      await Promise.all([first, second]);
      expectSame(dst.subarray(0, at), wantA.subarray(0, at), `rep ${rep}: before the overlap`);
      expectSame(dst.subarray(at, at + tail), wantB, `rep ${rep}: the second download`);
      expectSame(dst.subarray(at + tail, bytes), wantA.subarray(at + tail), `rep ${rep}: after it`);
    }
    await ring.close();
    a.release();
    b.release();
  });

  it('later uploads into the same device bytes land last, large and small mixed', async () => {
    const g = gpu();
    const bytes = 2 * CHUNK + 8;
    const t = deviceWords(g, bytes);
    const big = randomFill(3, host('SharedArrayBuffer', bytes, 4));
    const small = randomFill(4, host('SharedArrayBuffer', 64, 0)); // copied on the main thread
    const again = randomFill(5, host('WebAssembly.Memory', CHUNK, 0)); // off the main thread
    const transfers = [
      up.upload(big, t),
      up.upload(small, t, { dstOffsetBytes: 4 * 1000 }),
      up.upload(again, t, { dstOffsetBytes: CHUNK }),
    ];
    await Promise.all(transfers.map((x) => x.enqueued));
    const want = new Uint8Array(big);
    want.set(small, 4 * 1000);
    want.set(again, CHUNK);
    const back = host('WebAssembly.Memory', bytes, 0);
    await down.download(t, back);
    expectSame(back, want, 'final device contents');
    t.release();
  });
});
