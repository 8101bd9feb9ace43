// cli benchmark: wall time of `lsp-offload info` as a user sees it (process start to exit), and the
// speed of `generate` (prefill, then KV-cached decoding in tokens/s) on a random-initialised preset model.
// Usage: node bench/run.mjs [outDir] [preset (default llama-tiny)]
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import {
  GREEDY,
  GpuRuntime,
  ModelWeights,
  Rng,
  Transformer,
  generateTokens,
  presetConfig,
} from '@lsp-offload/core';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const outDir = process.argv[2];
const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const times = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  execFileSync(process.execPath, [bin, 'info', '--json'], { stdio: 'ignore' });
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
console.log(
  `cli bench: 'lsp-offload info' wall p50 ${times[2].toFixed(0)} ms, min ${times[0].toFixed(0)} ms (5 runs)`,
);

const preset = process.argv[3] ?? 'llama-tiny';
const gpu = await GpuRuntime.create();
const dtype = gpu.has('shader-f16') ? 'f16' : 'f32';
const config = presetConfig(preset);
const weights = ModelWeights.random(gpu, config, dtype, new Rng(1));
const model = new Transformer(gpu, weights, { checkpointing: false });
const rng = new Rng(2);
const prompt = Array.from({ length: 32 }, () => rng.below(config.vocabSize));
const generation = [];
for (let i = 0; i < 3; i++) {
  // the first run also compiles the shaders: reported, not counted in the median
  const r = await generateTokens(model, prompt, { ...GREEDY, maxNewTokens: 64, stopTokenIds: [], seed: 0 });
  generation.push({
    prefillMs: r.prefillMs,
    decodeTokensPerSecond: r.decodeTokensPerSecond,
    newTokens: r.tokens.length,
  });
}
const device = gpu.ctx.report.description || gpu.ctx.report.device;
model.release();
weights.release();
gpu.destroy();
const measured = generation.slice(1).sort((a, b) => a.decodeTokensPerSecond - b.decodeTokensPerSecond);
const median = measured[Math.floor(measured.length / 2)];
console.log(
  `cli bench: generate on ${preset} (${dtype}, 32-token prompt, 64 new tokens): prefill ${median.prefillMs.toFixed(1)} ms, ` +
    `decode ${median.decodeTokensPerSecond.toFixed(1)} tokens/s (median of ${measured.length} after a warm-up)`,
);
const machine = { cpu: `${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores)`, gpu: device };
console.log(`machine: CPU ${machine.cpu}; GPU ${machine.gpu}`);
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'cli-bench.json'),
    JSON.stringify({ machine, infoWallMs: times, generate: { preset, dtype, runs: generation } }, null, 2),
  );
}
