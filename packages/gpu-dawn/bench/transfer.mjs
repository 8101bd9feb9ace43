// Transfer benchmark: device -> host and host -> device GB/s at 4, 64 and 256 MiB through the staging
// rings, host side a shared WebAssembly.Memory (the CPU optimizer's memory). Sweeps the host copy method
// (main-thread memcpy 'fill'; native threads 'threads' on the main thread, 'async' off it), copy threads,
// chunk size and staging buffers in flight, beside ceilings measured in the same run: the map alone
// without reading it, and the bare host copies (one memcpy; native threads; into first-touched memory).
// PyTorch's pinned and pageable copies on the same GPU come from bench/transfer_torch.py: run first
// into the same folder when python3 has torch and its JSON is not there yet.
// Usage: node bench/transfer.mjs <outDir> [--quick]
/* global GPUBufferUsage, GPUMapMode */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sig } from './format.mjs';
import {
  DEFAULT_CHUNK_BYTES,
  DEFAULT_COPY_THREADS,
  DEFAULT_HOST_COPY,
  DEFAULT_SLOTS,
  DownloadRing,
  GpuRuntime,
  UploadRing,
  copyHostBytes,
  nativeHostCopyStatus,
} from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = process.argv[2]?.startsWith('--') ? undefined : process.argv[2];
const quick = process.argv.includes('--quick');
const MiB = 1 << 20;
const SIZES = quick ? [4 * MiB, 32 * MiB] : [4 * MiB, 64 * MiB, 256 * MiB];
const native = nativeHostCopyStatus();
const DEFAULTS = {
  hostCopy: DEFAULT_HOST_COPY,
  chunkBytes: DEFAULT_CHUNK_BYTES,
  slots: DEFAULT_SLOTS,
  copyThreads: DEFAULT_COPY_THREADS,
};

/** Ring configurations: the defaults, the old main-thread default, then the native sweep. */
function configs() {
  const list = [
    { name: 'default', ...DEFAULTS },
    { name: 'main thread (before)', hostCopy: 'fill', chunkBytes: 8 * MiB, slots: 4, copyThreads: 1 },
  ];
  if (!native.available) return list;
  const chunks = quick ? [4 * MiB] : [4 * MiB, 8 * MiB, 32 * MiB];
  const slotCounts = quick ? [4] : [4, 8];
  const threads = quick ? [2] : [2, 4, 8];
  for (const chunkBytes of chunks)
    for (const slots of slotCounts)
      for (const copyThreads of threads) list.push({ hostCopy: 'async', chunkBytes, slots, copyThreads });
  // the same copies with the main thread waiting for them
  if (!quick)
    for (const [chunkBytes, copyThreads] of [
      [8 * MiB, 4],
      [32 * MiB, 8],
    ])
      list.push({ hostCopy: 'threads', chunkBytes, slots: 4, copyThreads });
  return list;
}
const repsFor = (bytes) => (bytes <= 4 * MiB ? 20 : bytes <= 64 * MiB ? 6 : 3);

const torchFile = outDir ? join(outDir, 'transfer_torch.json') : undefined;
if (torchFile && !existsSync(torchFile) && !quick) {
  const probe = spawnSync('python3', ['-c', 'import torch; assert torch.cuda.is_available()'], {
    stdio: 'ignore',
  });
  if (probe.status === 0) {
    const r = spawnSync('python3', [join(here, 'transfer_torch.py'), outDir], { stdio: 'inherit' });
    if (r.status !== 0) console.log(`(transfer_torch.py failed with ${r.status}; our numbers only)`);
  }
}
const torch = torchFile && existsSync(torchFile) ? JSON.parse(readFileSync(torchFile, 'utf8')) : undefined;
const torchGbps = (direction, memory, bytes) =>
  torch?.rows.find((r) => r.direction === direction && r.memory === memory && r.bytes === bytes)?.gbps;

const gpu = await GpuRuntime.create();
const adapter = gpu.ctx.report.description;
const cpu = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores)`;
const maxBytes = Math.max(...SIZES);
const device = gpu.memory.allocate(
  'bench.device',
  maxBytes,
  'workspace',
  GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
);
// Host side: a shared WebAssembly.Memory, the optimizer's real client; touched once so page faults of a
// fresh allocation are not timed (the first-touch ceiling below measures them on their own).
const pages = maxBytes / 65536;
const wasm = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
const host = new Uint8Array(wasm.buffer, 0, maxBytes);
for (let i = 0; i < host.length; i += 4096) host[i] = i & 0xff;

/** Median and best GB/s of `reps` runs of `run` (one untimed warm-up first). */
async function measure(bytes, run, reps = repsFor(bytes)) {
  await run();
  const gbps = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await run();
    gbps.push(bytes / (performance.now() - t0) / 1e6);
  }
  gbps.sort((a, b) => a - b);
  return { median: gbps[gbps.length >> 1], best: gbps[gbps.length - 1] };
}

// A content check per direction before timing: a timed path that moved wrong bytes would be worthless.
async function checkContent(down, up, bytes) {
  const src = host.subarray(0, bytes);
  for (let i = 0; i < bytes; i += 4093) src[i] = (i * 7 + 3) & 0xff;
  const want = src.slice();
  await up.upload(src, device).enqueued;
  src.fill(0);
  await down.download(device, src);
  for (let i = 0; i < bytes; i += 4093) if (src[i] !== want[i]) return false;
  return true;
}

const rows = [];
for (const config of configs()) {
  const { name, ...options } = config;
  const label =
    name ?? `${options.hostCopy} ${options.chunkBytes / MiB}MiB x${options.slots} t${options.copyThreads}`;
  let down;
  let up;
  try {
    down = await DownloadRing.create(gpu, { ...options, label: 'bench-down' });
    up = await UploadRing.create(gpu, { ...options, label: 'bench-up' });
    const ok = await checkContent(down, up, Math.min(maxBytes, 3 * options.chunkBytes + 4100));
    for (const bytes of SIZES) {
      const view = host.subarray(0, bytes);
      const d2h = await measure(bytes, () => down.download(device, view).done);
      const h2d = await measure(bytes, () => up.upload(view, device).done);
      const c = { config: label, ...options, chunkMiB: options.chunkBytes / MiB, contentOk: ok };
      rows.push({ direction: 'd2h', bytes, ...c, gbps: d2h.median, bestGbps: d2h.best });
      rows.push({ direction: 'h2d', bytes, ...c, gbps: h2d.median, bestGbps: h2d.best });
    }
    console.error(`${label}: done${ok ? '' : ' (CONTENT MISMATCH)'}`);
  } catch (e) {
    console.error(`${label}: failed: ${e.message}`);
  } finally {
    await down?.close();
    await up?.close();
    gpu.memory.trim();
  }
}

// Ceilings in the same process: (a) device -> MAP_READ buffer + mapAsync without reading the range;
// (b) the bare host copy of the same size from a plain ArrayBuffer into the shared memory: one memcpy
// on this thread ('fill') and native threads; (c) the same into freshly allocated, untouched shared
// memory (first-touch page faults: is the copy fault-bound?).
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
  const copy = {};
  const methods = [['fill', 1]];
  if (native.available) for (const t of [2, 4, 8, 16]) methods.push(['threads', t]);
  for (const [method, threads] of methods) {
    const r = await measure(bytes, async () =>
      copyHostBytes(method, wasm.buffer, 0, plain.buffer, 0, bytes, threads),
    );
    copy[`${method}${method === 'threads' ? threads : ''}`] = r.median;
  }
  // first touch: a new shared memory per copy (3 copies; only the copy is timed)
  const firstTouch = {};
  for (const [method, threads] of [methods[0], methods.find((m) => m[1] === 4)].filter(Boolean)) {
    const gbps = [];
    for (let r = 0; r < 3; r++) {
      const fresh = new WebAssembly.Memory({ initial: bytes / 65536, maximum: bytes / 65536, shared: true });
      const t0 = performance.now();
      copyHostBytes(method, fresh.buffer, 0, plain.buffer, 0, bytes, threads);
      gbps.push(bytes / (performance.now() - t0) / 1e6);
    }
    firstTouch[`${method}${method === 'threads' ? threads : ''}`] = gbps.sort((a, b) => a - b)[1];
  }
  ceilings.push({ bytes, mapOnlyGbps: mapOnly.median, copyGbps: copy, firstTouchGbps: firstTouch });
}

const pick = (direction, bytes, filter) =>
  rows.filter((r) => r.direction === direction && r.bytes === bytes && filter(r));
const bestOf = (list) => list.reduce((a, b) => (b.gbps > a.gbps ? b : a), list[0]);
const table = [];
for (const direction of ['d2h', 'h2d']) {
  for (const bytes of SIZES) {
    const best = bestOf(pick(direction, bytes, (r) => r.contentOk));
    table.push({
      direction,
      bytes,
      default: pick(direction, bytes, (r) => r.config === 'default')[0],
      before: pick(direction, bytes, (r) => r.config === 'main thread (before)')[0],
      best,
      torchPinned: torchGbps(direction, 'pinned', bytes),
      torchPageable: torchGbps(direction, 'pageable', bytes),
    });
  }
}

const date = new Date().toISOString().slice(0, 10);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'transfer.json'),
    JSON.stringify(
      {
        date,
        adapter,
        cpu,
        node: process.version,
        quick,
        native,
        defaults: DEFAULTS,
        rows,
        table,
        ceilings,
        torch,
      },
      null,
      2,
    ),
  );
}
const f = (x) => sig(x);
const bad = rows.filter((r) => !r.contentOk).length;
console.log(`transfers on ${adapter}, ${cpu}, ${date}; host side: shared WebAssembly.Memory; GB/s, median`);
console.log(
  `native host copy: ${native.available ? 'yes' : `no (${native.reason})`}; content checks failed: ${bad}`,
);
console.log(
  'dir  size MiB  default  before  best  best config                   torch pinned  pageable  default/pinned',
);
for (const r of table) {
  const ratio = r.default && r.torchPinned ? (r.default.gbps / r.torchPinned).toFixed(2) : '-';
  console.log(
    `${r.direction}  ${String(r.bytes / MiB).padStart(8)} ${f(r.default?.gbps).padStart(8)} ${f(r.before?.gbps).padStart(7)}` +
      ` ${f(r.best?.gbps).padStart(5)}  ${(r.best?.config ?? '-').padEnd(29)} ${f(r.torchPinned).padStart(12)}` +
      ` ${f(r.torchPageable).padStart(9)}  ${ratio.padStart(14)}`,
  );
}
console.log('ceilings (GB/s): size MiB, map only, host copy by method, into first-touched memory');
for (const c of ceilings) {
  const copies = Object.entries(c.copyGbps)
    .map(([k, v]) => `${k} ${f(v)}`)
    .join(', ');
  const touch = Object.entries(c.firstTouchGbps)
    .map(([k, v]) => `${k} ${f(v)}`)
    .join(', ');
  console.log(`  ${c.bytes / MiB}: map ${f(c.mapOnlyGbps)}; copy ${copies}; first touch ${touch}`);
}
// Per configuration, the mean over sizes each way: what to pick as the default.
console.log('by configuration (mean GB/s over sizes, d2h / h2d):');
const byConfig = new Map();
for (const r of rows) {
  const e = byConfig.get(r.config) ?? { d2h: [], h2d: [] };
  e[r.direction].push(r.gbps);
  byConfig.set(r.config, e);
}
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
for (const [config, e] of [...byConfig].sort(
  (a, b) => mean(b[1].d2h) + mean(b[1].h2d) - mean(a[1].d2h) - mean(a[1].h2d),
))
  console.log(`  ${config.padEnd(30)} ${f(mean(e.d2h)).padStart(6)} / ${f(mean(e.h2d)).padStart(6)}`);
gpu.destroy();
process.exit(bad ? 1 : 0);
