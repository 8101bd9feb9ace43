// Stress: thousands of transfers of mixed sizes (4 B to 3 MiB, multiples of 4, log-uniform), uploads and
// downloads interleaved across concurrent lanes, host sides in ArrayBuffer, SharedArrayBuffer and shared
// WebAssembly.Memory at arbitrary byte offsets. Every download is checked against a host mirror of the
// device buffer, so a lost, misplaced, reordered or overlapping write shows. Run with the main-thread
// copies and with the native threads off the main thread ('async': full chunks copy asynchronously,
// short ones on the main thread, so both kinds interleave).
import { Buffer } from 'node:buffer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DownloadRing, UploadRing, type HostCopyMethod } from '../src/index.js';
import { makeRng, NAN_BITS, useGpu } from './harness.js';

const gpu = useGpu();
const LANES = 6;
const OPS_PER_LANE = 500;
const LANE_BYTES = 3 << 20;
const MAX_TRANSFER = 3 << 20;
const CONFIGS: { name: string; down: HostCopyMethod; up: HostCopyMethod }[] = [
  { name: 'main-thread copies', down: 'fill', up: 'f64' },
  { name: 'native threads off the main thread', down: 'async', up: 'async' },
];

function hostPool(kind: number, bytes: number): Uint8Array {
  if (kind === 0) return new Uint8Array(new ArrayBuffer(bytes));
  if (kind === 1) return new Uint8Array(new SharedArrayBuffer(bytes));
  const pages = Math.ceil(bytes / 65536);
  return new Uint8Array(
    new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer,
    0,
    bytes,
  );
}

describe.each(CONFIGS)('staging rings under stress, $name', (config) => {
  let down: DownloadRing;
  let up: UploadRing;
  beforeAll(async () => {
    // Chunks of 256 KiB and 4 slots: multi-MiB transfers split into many chunks and queue behind each other.
    const common = { chunkBytes: 256 << 10, slots: 4, copyThreads: 3 };
    down = await DownloadRing.create(gpu(), { ...common, label: 'stress-down', hostCopy: config.down });
    up = await UploadRing.create(gpu(), { ...common, label: 'stress-up', hostCopy: config.up });
  });
  afterAll(async () => {
    await down?.close();
    await up?.close();
  });

  it(`${LANES * OPS_PER_LANE} interleaved transfers of mixed sizes keep every byte where it belongs`, async () => {
    const g = gpu();
    let transfers = 0;
    let movedBytes = 0;
    const lane = async (id: number): Promise<void> => {
      const rng = makeRng(1000 + id);
      const device = g.tensor(`lane${id}`, 'u32', [LANE_BYTES / 4], 'workspace');
      g.fill32(device, NAN_BITS);
      const mirror = new Uint8Array(LANE_BYTES);
      new Uint32Array(mirror.buffer).fill(NAN_BITS);
      // Random content: windows of one random pool at random offsets, so each upload differs.
      const random = new Uint8Array(2 * MAX_TRANSFER);
      for (let i = 0; i < random.length; i++) random[i] = (rng() * 256) | 0;
      const pools = [0, 1, 2].map((k) => hostPool(k, MAX_TRANSFER + 64));
      const size = (): number => {
        const logMax = Math.log(MAX_TRANSFER / 4);
        return Math.max(1, Math.floor(Math.exp(rng() * logMax))) * 4;
      };
      for (let op = 0; op < OPS_PER_LANE; op++) {
        const bytes = size();
        const deviceOffset = Math.floor((rng() * (LANE_BYTES - bytes)) / 4) * 4;
        const pool = pools[Math.floor(rng() * 3)]!;
        const hostOffset = Math.floor(rng() * 64);
        const host = pool.subarray(hostOffset, hostOffset + bytes);
        if (rng() < 0.5) {
          const from = Math.floor(rng() * (random.length - bytes));
          host.set(random.subarray(from, from + bytes));
          mirror.set(host, deviceOffset);
          // Once enqueued the host bytes are consumed: the pool is rewritten by the next operation.
          await up.upload(host, device, { dstOffsetBytes: deviceOffset, label: `lane${id}.up${op}` })
            .enqueued;
        } else {
          host.fill(0xa5);
          await down.download(device, host, { srcOffsetBytes: deviceOffset, label: `lane${id}.down${op}` });
          const want = Buffer.from(mirror.buffer, deviceOffset, bytes);
          if (!Buffer.from(host.buffer, host.byteOffset, bytes).equals(want)) {
            let at = 0;
            while (host[at] === want[at]) at++;
            expect.fail(`lane ${id} op ${op}: ${bytes} B at device ${deviceOffset}: first bad byte ${at}`);
          }
        }
        transfers++;
        movedBytes += bytes;
      }
      // Finally read the whole lane back: every upload landed exactly in its range.
      const all = pools[2]!.subarray(0, LANE_BYTES);
      await down.download(device, all);
      expect(Buffer.from(all.buffer, all.byteOffset, LANE_BYTES).equals(mirror), `lane ${id} final`).toBe(
        true,
      );
      device.release();
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: LANES }, (_, i) => lane(i)));
    await Promise.all([up.idle(), down.idle()]);
    const seconds = (performance.now() - t0) / 1000;
    expect(transfers).toBe(LANES * OPS_PER_LANE);
    expect(up.stats().maxInFlight).toBeLessThanOrEqual(4);
    expect(down.stats().maxInFlight).toBeLessThanOrEqual(4);
    console.log(
      `stress: ${transfers} transfers, ${(movedBytes / 2 ** 20).toFixed(0)} MiB in ${seconds.toFixed(1)} s; ` +
        `chunks up ${up.stats().chunks}, down ${down.stats().chunks}`,
    );
  });
});
