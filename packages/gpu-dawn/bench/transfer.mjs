// Transfer benchmark: device -> SharedArrayBuffer and SharedArrayBuffer -> device GB/s at 4, 64 and
// 256 MiB through the staging rings, sweeping chunk size, staging buffers in flight and the host copy
// method, beside two ceilings measured in the same run (the map alone without reading it; a plain
// single-threaded JS copy of the same size) and, when bench/transfer_torch.py already wrote
// <outDir>/transfer_torch.json, PyTorch's pinned and pageable copies on the same GPU.
// Usage: node bench/transfer.mjs <outDir> [--quick]
/* global GPUBufferUsage, GPUMapMode */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sig } from './format.mjs';
import {
  DEFAULT_CHUNK_BYTES,
  DEFAULT_HOST_COPY,
  DEFAULT_SLOTS,
  DownloadRing,
  GpuRuntime,
  HOST_COPY_METHODS,
  UploadRing,
  copyHostBytes,
} from '../dist/index.js';

const outDir = process.argv[2];
const quick = process.argv.includes('--quick');
const MiB = 1 << 20;
const SIZES = [4 * MiB, 64 * MiB, 256 * MiB];
// --quick: only the rings' defaults.
const CHUNKS = quick ? [DEFAULT_CHUNK_BYTES] : [2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB, 64 * MiB];
const SLOTS = quick ? [DEFAULT_SLOTS] : [2, 4, 8];
const METHODS = quick ? [DEFAULT_HOST_COPY] : HOST_COPY_METHODS;
const repsFor = (bytes) => (bytes <= 4 * MiB ? 20 : bytes <= 64 * MiB ? 6 : 3);

const gpu = await GpuRuntime.create();
const adapter = gpu.ctx.report.description;
const maxBytes = Math.max(...SIZES);
const device = gpu.memory.allocate(
  'bench.device',
  maxBytes,
  'workspace',
  GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
);
// Host side: a shared WebAssembly.Memory, the optimizer's real client; touched once so page faults of a
// fresh allocation are not timed.
const wasm = new WebAssembly.Memory({ initial: maxBytes / 65536, maximum: maxBytes / 65536, shared: true });
const host = new Uint8Array(wasm.buffer, 0, maxBytes);
for (let i = 0; i < host.length; i += 4096) host[i] = i & 0xff;

/** Median and best GB/s of `reps` runs of `run` (one untimed warm-up first). */
async function measure(bytes, run) {
  await run();
  const gbps = [];
  for (let r = 0; r < repsFor(bytes); r++) {
    const t0 = performance.now();
    await run();
    gbps.push(bytes / (performance.now() - t0) / 1e6);
  }
  gbps.sort((a, b) => a - b);
  return { median: gbps[gbps.length >> 1], best: gbps[gbps.length - 1] };
}

const rows = [];
for (const chunkBytes of CHUNKS) {
  for (const slots of SLOTS) {
    for (const hostCopy of METHODS) {
      const down = await DownloadRing.create(gpu, { chunkBytes, slots, hostCopy, label: 'bench-down' });
      const up = await UploadRing.create(gpu, { chunkBytes, slots, hostCopy, label: 'bench-up' });
      for (const bytes of SIZES) {
        const view = host.subarray(0, bytes);
        const d2h = await measure(bytes, () => down.download(device, view).done);
        const h2d = await measure(bytes, () => up.upload(view, device).done);
        const config = { chunkMiB: chunkBytes / MiB, slots, hostCopy };
        rows.push({ direction: 'd2h', bytes, ...config, gbps: d2h.median, bestGbps: d2h.best });
        rows.push({ direction: 'h2d', bytes, ...config, gbps: h2d.median, bestGbps: h2d.best });
      }
      await down.close();
      await up.close();
      gpu.memory.trim();
    }
  }
}

// Ceilings in the same process: (a) device -> MAP_READ buffer + mapAsync without reading the range;
// (b) the single-threaded JS copy alone, ArrayBuffer -> the shared memory, per copy method (the table
// shows the method of the best ring configuration).
const ceilings = [];
for (const bytes of SIZES) {
  const staging = gpu.memory.allocate(
    'bench.map-only',
    bytes,
    'staging',
    GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  );
  const mapOnly = await measure(bytes, async () => {
    gpu.commandEncoder().copyBufferToBuffer(device, 0, staging, 0, bytes);
    gpu.submit();
    await staging.mapAsync(GPUMapMode.READ, 0, bytes);
    staging.unmap();
  });
  gpu.memory.release(staging);
  const plain = new Uint8Array(bytes).fill(1);
  const jsCopyGbps = {};
  for (const method of HOST_COPY_METHODS) {
    const r = await measure(bytes, async () => copyHostBytes(method, wasm.buffer, 0, plain.buffer, 0, bytes));
    jsCopyGbps[method] = r.median;
  }
  ceilings.push({ bytes, mapOnlyGbps: mapOnly.median, jsCopyGbps });
}

const torchFile = outDir ? join(outDir, 'transfer_torch.json') : undefined;
const torch = torchFile && existsSync(torchFile) ? JSON.parse(readFileSync(torchFile, 'utf8')) : undefined;
const torchGbps = (direction, memory, bytes) =>
  torch?.rows.find((r) => r.direction === direction && r.memory === memory && r.bytes === bytes)?.gbps;

const best = [];
for (const direction of ['d2h', 'h2d']) {
  for (const bytes of SIZES) {
    const candidates = rows.filter((r) => r.direction === direction && r.bytes === bytes);
    best.push(candidates.reduce((a, b) => (b.gbps > a.gbps ? b : a)));
  }
}

const date = new Date().toISOString().slice(0, 10);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'transfer.json'),
    JSON.stringify({ date, adapter, node: process.version, quick, rows, best, ceilings, torch }, null, 2),
  );
}
const f = (x) => sig(x);
console.log(`transfers on ${adapter}, ${date} (host side: shared WebAssembly.Memory; GB/s, median of runs)`);
console.log(
  'dir  size MiB   ours  config (chunk MiB/slots/copy)   map-only  js-copy  torch-pinned  torch-pageable',
);
for (const r of best) {
  const c = ceilings.find((x) => x.bytes === r.bytes);
  console.log(
    `${r.direction}  ${String(r.bytes / MiB).padStart(8)} ${f(r.gbps).padStart(6)}  ${`${r.chunkMiB}/${r.slots}/${r.hostCopy}`.padEnd(29)}` +
      ` ${(r.direction === 'd2h' ? f(c.mapOnlyGbps) : '-').padStart(9)} ${f(c.jsCopyGbps[r.hostCopy]).padStart(8)}` +
      ` ${f(torchGbps(r.direction, 'pinned', r.bytes)).padStart(13)} ${f(torchGbps(r.direction, 'pageable', r.bytes)).padStart(15)}`,
  );
}
gpu.destroy();
process.exit(0);
